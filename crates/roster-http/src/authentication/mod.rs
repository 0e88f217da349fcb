//! The Authentication API: `/oauth/token` (later `/dbconnections/*`), with Auth0's OAuth error bodies.

pub mod token;
