# Workload "ci" (issue #4, 5): a CI artifact restore. A cargo project with
# its built target/ directory (thaw's own source at HEAD, debug build; with
# --quick a small crate using serde_json and libc) is packed; then it is
# restored at the same path by full extraction or lazily by thaw, and a
# no-op `cargo build --offline` must rebuild nothing (mtimes must survive).
# Sourced by run.sh.

ci_inputs() {
    CI=$WORK/ci
    CI_PROJ=$CI/restore.box/proj
    CI_ARCHIVE=$CI/project.thaw.tar.zst
    local kind=$((QUICK ? 0 : 1)) stamp
    stamp="$kind $(sha256sum "$THAW" | cut -c1-16) $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo none)"
    if [[ -f $CI_ARCHIVE && "$(cat "$CI/.ok" 2>/dev/null)" == "$stamp" ]]; then
        return
    fi
    log "ci: building the project to archive (untimed input)"
    rm -rf "$CI"
    mkdir -p "$CI_PROJ"
    if ((kind)); then
        git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$CI_PROJ" ||
            die "cannot export thaw's HEAD with git archive"
    else
        mkdir -p "$CI_PROJ/src"
        cat >"$CI_PROJ/Cargo.toml" <<'EOF'
[package]
name = "ci-sample"
version = "0.1.0"
edition = "2021"

[dependencies]
serde_json = "1"
libc = "0.2"
EOF
        cat >"$CI_PROJ/src/main.rs" <<'EOF'
fn main() {
    println!("{}", serde_json::json!({ "exit": libc::EXIT_SUCCESS }));
}
EOF
    fi
    step ci-build env -u CARGO_TARGET_DIR -C "$CI_PROJ" cargo build
    ci_noop_build "$CI_PROJ" ci-build-noop-check
    step ci-pack "$THAW" pack "$CI_PROJ" -o "$CI_ARCHIVE"
    rm -rf "$CI_PROJ"
    echo "$stamp" >"$CI/.ok"
}

# The timed no-op build as a command line; its cargo output goes to LOG.
ci_build_cmd() {
    printf "cd %q && /usr/bin/time -f '%%e %%U %%S' -o %q env -u CARGO_TARGET_DIR cargo build --offline > %q 2>&1" "$1" "$2" "$3"
}

# Dies unless the cargo output in LOG shows a build that compiled nothing.
ci_check_noop() {
    local log=$1 what=$2
    grep -q 'Finished' "$log" || die "$what: cargo did not finish (see $log)"
    if grep -qE '^\s*(Compiling|Building|Running) ' "$log"; then
        grep -E '^\s*Compiling ' "$log" | head -n 5 >&2
        die "$what: the no-op cargo build rebuilt something (mtimes lost?); see $log"
    fi
}

ci_noop_build() {
    local dir=$1 name=$2
    step "$name" bash -c "$(ci_build_cmd "$dir" "$LOGS/$name.time" "$LOGS/$name.cargo.log")"
    ci_check_noop "$LOGS/$name.cargo.log" "$name"
}

wl_ci() {
    ci_inputs
    local wl=ci rep v name restore tf clog inner_wall
    record $wl disk "archive data" 1 "$("$THAW" info "$CI_ARCHIVE" --json | jq -r .data_bytes)" B
    for ((rep = 1; rep <= REPS; rep++)); do
        for v in $(order $rep base thaw); do
            name="full extraction"
            if [[ $v == thaw ]]; then name=thaw; fi
            tf=$CI/build-$v-$rep.time
            clog=$LOGS/ci-cargo-$v-$rep.log
            fresh_dir "$CI_PROJ"
            rm -f "$tf"
            drop_caches
            log "ci: $name, rep $rep"
            if [[ $v == base ]]; then
                mkdir "$CI_PROJ"
                timed "ci-restore-base-$rep" tar -I zstd -xf "$CI_ARCHIVE" -C "$CI_PROJ"
                restore=$T_WALL
                timed "ci-build-base-$rep" bash -c "$(ci_build_cmd "$CI_PROJ" "$tf" "$clog")"
            else
                timed "ci-restore-thaw-$rep" "$THAW" populate "$CI_ARCHIVE" "$CI_PROJ"
                restore=$T_WALL
                timed "ci-build-thaw-$rep" "$THAW" run "$CI_ARCHIVE" "$CI_PROJ" -- \
                    bash -c "$(ci_build_cmd "$CI_PROJ" "$tf" "$clog")"
            fi
            ci_check_noop "$clog" "ci ($name, rep $rep)"
            read -r inner_wall _ < <(tail -n 1 "$tf")
            record $wl restore "$name" $rep "$restore" s
            record $wl noop_build "$name" $rep "$inner_wall" s
            record $wl total "$name" $rep "$(calc "$restore + $T_WALL")" s
            if [[ $v == thaw ]]; then
                record $wl disk thaw $rep "$(thaw_disk "$CI_PROJ")" B
                record_status $wl "" thaw $rep "$CI_PROJ"
            else
                record $wl disk "$name" $rep "$(tree_disk "$CI_PROJ")" B
            fi
        done
    done
    thaw_verify_dir ci "$CI_PROJ"
    compare $wl total thaw "full extraction" info 0 "restore + no-op build"
    compare $wl disk thaw "full extraction" info 0 "disk after the no-op build"
    rm -rf "$(dirname "$CI_PROJ")"
}
