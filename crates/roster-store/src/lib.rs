//! roster-store
