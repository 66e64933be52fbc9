//! The domain's behaviour tests: rules one by one, and properties over random command sequences.

mod fixtures;
mod properties;
mod reports;
mod rules;
mod upcasting;
