//! The Authentication API: `/oauth/token` and `/dbconnections/*`, with Auth0's error bodies.

pub mod change_password;
pub mod code;
pub mod issue;
pub mod login;
pub mod refresh;
pub mod signup;
pub mod token;
