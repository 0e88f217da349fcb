//! roster-testkit
