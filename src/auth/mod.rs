//! Bind decisions: credential parsing, password hashes and, later, second
//! factors and throttling. Clock and randomness are parameters.

pub mod password;
