//! Limits on what one request may ask, each failing with `LIMIT_EXCEEDED` and
//! `extensions.limit` naming it: depth and complexity (async-graphql's validation), root fields
//! and aliases (checked here on the parsed document), and, in the HTTP layer, body size, batch
//! size and time; in the WebSocket layer, operations per connection and connections per client.

use std::time::Duration;

use async_graphql::{
    ServerError, ServerResult,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// What one request may ask. The defaults suit the API's own shapes with room to spare.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Deepest nesting of selections.
    pub depth: usize,
    /// Largest complexity (selected fields, as async-graphql counts them).
    pub complexity: usize,
    /// Most fields at the root of one operation (aliases included).
    pub root_fields: usize,
    /// Most aliases in one document.
    pub aliases: usize,
    /// Largest request body, in bytes.
    pub body_bytes: usize,
    /// Most operations in one batch.
    pub batch: usize,
    /// Longest time one request may run.
    pub timeout: Duration,
    /// Whether the schema answers introspection (GraphiQL needs it).
    pub introspection: bool,
    /// Most operations (subscriptions, mostly) open at once on one WebSocket connection.
    pub subscriptions_per_connection: usize,
    /// Most WebSocket connections open at once from one client (one remote address).
    pub connections_per_client: usize,
    /// Proxies (a balancer) whose `X-Forwarded-For` names the client that
    /// `connections_per_client` counts; any other peer is the client itself.
    pub trusted_proxies: Vec<AddressRange>,
}

pub use crate::config::AddressRange;

impl Default for Limits {
    fn default() -> Self {
        Self {
            depth: 16,
            complexity: 500,
            root_fields: 20,
            aliases: 30,
            body_bytes: 1 << 20,
            batch: 10,
            timeout: Duration::from_secs(15),
            introspection: true,
            subscriptions_per_connection: 100,
            connections_per_client: 32,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A `LIMIT_EXCEEDED` error naming `limit`.
pub fn exceeded(limit: &str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "LIMIT_EXCEEDED");
    extensions.set("limit", limit);
    error
}

/// Checks the parsed document's root fields (per operation) and aliases (in all).
///
/// # Errors
/// `LIMIT_EXCEEDED` naming `rootFields` or `aliases`.
pub fn check_shape(
    document: &ExecutableDocument,
    root_fields: usize,
    aliases: usize,
) -> ServerResult<()> {
    for (_, operation) in document.operations.iter() {
        let roots = operation.node.selection_set.node.items.len();
        if roots > root_fields {
            return Err(exceeded(
                "rootFields",
                format!("an operation selects {roots} root fields; the limit is {root_fields}"),
            ));
        }
    }
    let used: usize = document
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .chain(
            document
                .fragments
                .values()
                .map(|f| count_aliases(&f.node.selection_set.node)),
        )
        .sum();
    if used > aliases {
        return Err(exceeded(
            "aliases",
            format!("the document uses {used} aliases; the limit is {aliases}"),
        ));
    }
    Ok(())
}

/// With introspection off, a document that selects `__schema` or `__type` anywhere is refused
/// with an error (not answered with a silent null). `__typename` stays: clients add it to every
/// selection.
///
/// # Errors
/// `GRAPHQL_VALIDATION_FAILED`.
pub fn refuse_introspection(document: &ExecutableDocument) -> ServerResult<()> {
    let asks = document
        .operations
        .iter()
        .any(|(_, op)| introspects(&op.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|f| introspects(&f.node.selection_set.node));
    if asks {
        let mut error = ServerError::new("introspection is disabled on this server", None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "GRAPHQL_VALIDATION_FAILED");
        return Err(error);
    }
    Ok(())
}

fn introspects(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            matches!(field.node.name.node.as_str(), "__schema" | "__type")
                || introspects(&field.node.selection_set.node)
        }
        Selection::InlineFragment(fragment) => introspects(&fragment.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::AddressRange;

    #[test]
    fn address_ranges_hold_what_their_prefix_covers() {
        let range: AddressRange = "10.1.0.0/16".parse().unwrap();
        assert!(range.contains("10.1.200.3".parse().unwrap()));
        assert!(range.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!range.contains("10.2.0.1".parse().unwrap()));
        let one: AddressRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: AddressRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: AddressRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<AddressRange>().is_err());
        assert!("proxy".parse::<AddressRange>().is_err());
    }
}
