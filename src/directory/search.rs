//! The search planner and access rules.
