//! The one integration test binary (`cargo test --test integration`): tests against lab hosts,
//! Docker containers with sshd started through `consulctl lab up`. See `harness.rs`.
//!
//! The first `lab up` on a machine builds the lab images (debootstrap, 1-3 minutes); concurrent
//! tests wait for that one build (a lock file in the cache dir).

mod apply_roll;
mod day2;
mod docker_host;
mod harness;
mod killed;
mod lab;
mod lb;
mod lb_host;
mod lifecycle;
mod multidc;
mod node;
mod plumbing;
mod probe;
mod recovery;
mod registrar;
mod restart;
mod rollout;
mod security;
mod ssh;
