//! Herald bootstrap: configuration, wiring, CLI. Lands with the server issue.
