//! Integration tests of lazy hydration (issue #3) against the real kernel:
//! `thaw populate` + `thaw serve` (the built binary) on a filesystem that
//! takes fanotify pre-content marks. They need root and fail, never skip,
//! without it.

#[path = "archive/common.rs"]
mod common;
#[path = "support/mod.rs"]
mod support;

#[path = "hydrate/served.rs"]
mod served;

#[path = "hydrate/content.rs"]
mod content;
#[path = "hydrate/dehydrate.rs"]
mod dehydrate;
#[path = "hydrate/formats.rs"]
mod formats;
#[path = "support/helper.rs"]
mod helper;
#[path = "hydrate/lifecycle.rs"]
mod lifecycle;
#[path = "hydrate/marks.rs"]
mod marks;
#[path = "hydrate/profile.rs"]
mod profile;
#[path = "hydrate/safety.rs"]
mod safety;
#[path = "hydrate/soak.rs"]
mod soak;
#[path = "hydrate/stage_safety.rs"]
mod stage_safety;
#[path = "hydrate/walk.rs"]
mod walk;
