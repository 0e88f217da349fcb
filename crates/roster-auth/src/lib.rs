//! roster-auth
