//! The web UI: server-rendered pages under `/ui/` that read through the
//! registry, with an embedded stylesheet and script that only enhance.

// Wired into the router once the browse queries land (branch uidata).
#![allow(dead_code)]

pub mod assets;
pub mod format;
pub mod pages;
pub mod routes;
pub mod view;
