//! The rule language: YAML specs, facts extracted from events, set matchers, compilation,
//! evaluation and embedded rule tests.

pub mod compile;
pub mod facts;
pub mod matchers;
pub mod protected;
pub mod spec;
pub mod testing;
