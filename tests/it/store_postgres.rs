//! The PostgreSQL store against a private cluster: the shared conformance suite, plus what only
//! a shared, migrated, network-attached store has (see also `multi_node` and `crash`).

use tessera::store::Store;

use crate::pg_support;

tessera::store_conformance_tests!(|| -> Box<dyn Store> { Box::new(pg_support::fresh_store()) });
