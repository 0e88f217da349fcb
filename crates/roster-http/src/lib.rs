//! roster-http
