//! Which tar members the index keeps. An appended tar (`tar -r`, `cat a.tar
//! b.tar` with `--ignore-zeros`) can name a path more than once; GNU tar
//! extracts the members in order, so the later one wins. `convert` replays the
//! members the same way and indexes only what such an extraction leaves; the
//! other members stay in the tar stream (stock tar still sees them) but no
//! thaw command reads them. See formats/thaw-archive.md §1.3.

use super::index::{Entry, EntryKind};
use std::collections::{BTreeMap, HashMap};

/// Most warnings listed one by one; the rest are counted.
const MAX_WARNINGS: usize = 20;

/// What is at a path while the members are replayed.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// A directory made on the way to a deeper member (tar makes those too).
    Implicit,
    /// The member at this position in the stream.
    Member(usize),
}

/// Keeps, in stream order, the members a tar extraction in order leaves in
/// place, and says what it left out. Rules (GNU tar's behaviour):
/// - a member replaces whatever non-directory is at its path, and a directory
///   member merges into a directory already there (its metadata wins);
/// - a member below a non-directory (a symlink, file, ...) is skipped: tar
///   fails it with "Not a directory", and no member is ever placed through a
///   symlink;
/// - a non-directory member where a non-empty directory is is skipped: tar
///   fails it with "File exists".
///
/// A kept hard link whose target was replaced later keeps the old data: the
/// first such link becomes a file entry with the old member's data and
/// metadata, and the others link to it.
pub fn resolve(entries: Vec<Entry>) -> (Vec<Entry>, Vec<String>) {
    let mut replay = Replay::default();
    for i in 0..entries.len() {
        replay.place(&entries, i);
    }
    replay.finish(entries)
}

#[derive(Default)]
struct Replay {
    nodes: BTreeMap<Vec<u8>, Node>,
    /// For each hard link member: the file member its target named when it was read.
    link_targets: HashMap<usize, usize>,
    warnings: Vec<String>,
    unlisted: usize,
}

impl Replay {
    fn kind(entries: &[Entry], node: Node) -> EntryKind {
        match node {
            Node::Implicit => EntryKind::Dir,
            Node::Member(j) => entries[j].kind,
        }
    }

    fn warn(&mut self, why: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(why);
        } else {
            self.unlisted += 1;
        }
    }

    fn place(&mut self, entries: &[Entry], i: usize) {
        let e = &entries[i];
        if let Some((parent, kind)) = self.blocking_parent(entries, &e.path) {
            let parent = String::from_utf8_lossy(parent).into_owned();
            self.warn(format!(
                "{}: skipped, as tar skips it (Not a directory): its parent {parent:?} is a {kind:?} at that point of the archive",
                e.path_lossy()
            ));
            return;
        }
        match self.nodes.get(&e.path).copied() {
            Some(old) if Self::kind(entries, old) == EntryKind::Dir && e.kind != EntryKind::Dir && self.has_children(&e.path) => {
                self.warn(format!(
                    "{}: skipped, as tar skips it (File exists): a {:?} member cannot replace a non-empty directory",
                    e.path_lossy(),
                    e.kind
                ));
                return;
            }
            Some(Node::Member(_)) => {
                self.warn(format!("{}: appears more than once (appended archives?); the later member wins, as with tar", e.path_lossy()))
            }
            _ => {}
        }
        if e.kind == EntryKind::Hardlink {
            if let Some(t) = self.file_behind(entries, &e.link) {
                self.link_targets.insert(i, t);
            }
        }
        let mut p = e.path.as_slice();
        while let Some(cut) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..cut];
            if self.nodes.contains_key(p) {
                break;
            }
            self.nodes.insert(p.to_vec(), Node::Implicit);
        }
        self.nodes.insert(e.path.clone(), Node::Member(i));
    }

    /// The nearest ancestor of `path` in place, if it is not a directory.
    fn blocking_parent<'p>(&self, entries: &[Entry], path: &'p [u8]) -> Option<(&'p [u8], EntryKind)> {
        let mut p = path;
        while let Some(cut) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..cut];
            if let Some(&node) = self.nodes.get(p) {
                let kind = Self::kind(entries, node);
                return (kind != EntryKind::Dir).then_some((p, kind));
            }
        }
        None
    }

    fn has_children(&self, dir: &[u8]) -> bool {
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        self.nodes.range(prefix.clone()..).next().is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// The file member a hard link to `link` shares its data with right now.
    fn file_behind(&self, entries: &[Entry], link: &[u8]) -> Option<usize> {
        match self.nodes.get(link)? {
            Node::Member(j) if entries[*j].kind == EntryKind::File => Some(*j),
            Node::Member(j) if entries[*j].kind == EntryKind::Hardlink => self.link_targets.get(j).copied(),
            _ => None,
        }
    }

    fn finish(mut self, entries: Vec<Entry>) -> (Vec<Entry>, Vec<String>) {
        let mut keep = vec![false; entries.len()];
        for node in self.nodes.values() {
            if let Node::Member(i) = node {
                keep[*i] = true;
            }
        }
        // A replaced member -> the kept link that now holds its data.
        let mut stand_in: HashMap<usize, Vec<u8>> = HashMap::new();
        let mut out = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate().filter(|&(i, _)| keep[i]) {
            let Some(&t) = self.link_targets.get(&i) else {
                out.push(e.clone());
                continue;
            };
            let mut e = e.clone();
            if keep[t] {
                e.link = entries[t].path.clone();
            } else if let Some(p) = stand_in.get(&t) {
                e.link = p.clone();
            } else {
                stand_in.insert(t, e.path.clone());
                e = Entry { path: e.path, ..entries[t].clone() };
            }
            out.push(e);
        }
        if self.unlisted > 0 {
            self.warnings.push(format!("... and {} more such members", self.unlisted));
        }
        (out, self.warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, offset: u64) -> Entry {
        let mut e = Entry::new(path.into(), EntryKind::File);
        e.size = 1;
        e.data_offset = offset;
        e
    }

    fn other(path: &str, kind: EntryKind, link: &str) -> Entry {
        let mut e = Entry::new(path.into(), kind);
        e.link = link.into();
        e
    }

    fn paths(v: &[Entry]) -> Vec<String> {
        v.iter().map(|e| format!("{}{}", e.path_lossy(), e.kind.letter())).collect()
    }

    #[test]
    fn later_member_wins() {
        let (kept, w) = resolve(vec![file("a", 1), file("b", 2), file("a", 3)]);
        assert_eq!(paths(&kept), ["b-", "a-"]);
        assert_eq!(kept[1].data_offset, 3);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("a: appears more than once"), "{w:?}");
    }

    #[test]
    fn nothing_is_placed_below_a_symlink_or_file() {
        let (kept, w) = resolve(vec![other("a", EntryKind::Symlink, "/etc"), file("a/passwd", 1), file("f", 2), file("f/x/y", 3)]);
        assert_eq!(paths(&kept), ["al", "f-"]);
        assert!(w[0].contains("a/passwd: skipped") && w[0].contains("\"a\" is a Symlink"), "{w:?}");
        assert!(w[1].contains("f/x/y: skipped") && w[1].contains("\"f\" is a File"), "{w:?}");
        // A later directory replaces the symlink; what came before stays skipped.
        let (kept, _) = resolve(vec![other("a", EntryKind::Symlink, "/etc"), file("a/passwd", 1), other("a", EntryKind::Dir, "")]);
        assert_eq!(paths(&kept), ["ad"]);
    }

    #[test]
    fn directories_merge_and_files_replace_only_empty_ones() {
        let dir = |p: &str| other(p, EntryKind::Dir, "");
        let (kept, _) = resolve(vec![dir("d"), file("d/x", 1), dir("d")]);
        assert_eq!(paths(&kept), ["d/x-", "dd"]);
        let (kept, w) = resolve(vec![dir("d"), file("d/x", 1), file("d", 2)]);
        assert_eq!(paths(&kept), ["dd", "d/x-"]);
        assert!(w[0].contains("cannot replace a non-empty directory"), "{w:?}");
        let (kept, _) = resolve(vec![file("i/x", 1), file("i", 2)]);
        assert_eq!(paths(&kept), ["i/x-"], "an implicit directory with children stays");
        let (kept, _) = resolve(vec![dir("e"), file("e", 2), file("g", 3), dir("g")]);
        assert_eq!(paths(&kept), ["e-", "gd"]);
    }

    #[test]
    fn a_link_to_a_replaced_file_keeps_the_old_data() {
        let mut old = file("f", 10);
        old.mode = 0o600;
        let (kept, _) = resolve(vec![
            old,
            other("h1", EntryKind::Hardlink, "f"),
            other("h2", EntryKind::Hardlink, "h1"),
            file("f", 20),
            other("h3", EntryKind::Hardlink, "f"),
        ]);
        assert_eq!(paths(&kept), ["h1-", "h2h", "f-", "h3h"]);
        assert_eq!((kept[0].data_offset, kept[0].mode), (10, 0o600));
        assert_eq!(kept[1].link, b"h1");
        assert_eq!(kept[3].link, b"f");
        assert_eq!(kept[2].data_offset, 20);
        crate::archive::Index::new(kept, 100).expect("a valid index");
    }
}
