//! Text no column stores (docs/design.md#errors): a NUL or another control character (other than
//! tab, line feed and carriage return) anywhere in a request's input (an argument written in
//! the document, a variable, a key or value of a JSON argument) is refused before anything
//! runs, as `BAD_USER_INPUT` naming where it was. SQLite's `length()` stops at a NUL and
//! PostgreSQL refuses it in `text`, so such a string would otherwise reach the database as a
//! bug, not as the client's mistake.

use async_graphql::{
    Name, Pos, ServerError, ServerResult, Value, Variables,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::domain::validate::storable as allowed;

/// Checks every string of the document's arguments and of the variables.
///
/// # Errors
/// `BAD_USER_INPUT` with `extensions.field` naming the argument or variable (and the path in
/// it) that holds the first refused character.
pub fn check(document: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
    for (name, value) in variables.iter() {
        check_value(value, &format!("${name}"), None)?;
    }
    for (_, operation) in document.operations.iter() {
        check_set(&operation.node.selection_set.node)?;
    }
    for fragment in document.fragments.values() {
        check_set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

/// Checks the request's `operationName` as any other text the client sends.
///
/// # Errors
/// `BAD_USER_INPUT` with `extensions.field` `operationName`.
pub fn check_operation_name(name: Option<&str>) -> ServerResult<()> {
    name.map_or(Ok(()), |name| check_text(name, "operationName", None))
}

fn check_set(set: &SelectionSet) -> ServerResult<()> {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                for (name, value) in &field.node.arguments {
                    // Variables inside are checked with the variables: read them as null here.
                    let value = value
                        .node
                        .clone()
                        .into_const_with(|_| Ok::<_, std::convert::Infallible>(Value::Null))
                        .unwrap_or(Value::Null);
                    check_value(&value, &name.node, Some(field.pos))?;
                }
                check_set(&field.node.selection_set.node)?;
            }
            Selection::InlineFragment(fragment) => {
                check_set(&fragment.node.selection_set.node)?;
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}

/// Walks a value: strings, list items, object keys and fields.
fn check_value(value: &Value, path: &str, pos: Option<Pos>) -> ServerResult<()> {
    match value {
        Value::String(text) => check_text(text, path, pos),
        Value::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(item, &format!("{path}[{i}]"), pos)),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            check_key(key, path, pos)?;
            check_value(item, &format!("{path}.{key}"), pos)
        }),
        _ => Ok(()),
    }
}

fn check_key(key: &Name, path: &str, pos: Option<Pos>) -> ServerResult<()> {
    check_text(key.as_str(), &format!("{path} (a key)"), pos)
}

fn check_text(text: &str, path: &str, pos: Option<Pos>) -> ServerResult<()> {
    if text.chars().all(allowed) {
        return Ok(());
    }
    let field = path.trim_start_matches('$').to_owned();
    let mut error = ServerError::new(
        format!("{field}: control characters (such as NUL) are not allowed in text"),
        pos,
    );
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "BAD_USER_INPUT");
    extensions.set("field", field);
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tab_and_line_breaks_among_the_controls() {
        assert!(allowed('\t') && allowed('\n') && allowed('\r') && allowed('é'));
        assert!(!allowed('\0') && !allowed('\u{7}') && !allowed('\u{7f}') && !allowed('\u{85}'));
    }

    #[test]
    fn a_nul_in_a_json_key_names_the_path() {
        let mut object = async_graphql::indexmap::IndexMap::new();
        object.insert(Name::new("ok"), Value::from("fine"));
        object.insert(Name::new("bad\0key"), Value::from(1));
        let variables = Variables::from_value(Value::Object(
            [(Name::new("evidence"), Value::Object(object))]
                .into_iter()
                .collect(),
        ));
        let document = async_graphql::parser::parse_query("{ __typename }").unwrap();
        let error = check(&document, &variables).unwrap_err();
        let extensions = error.extensions.unwrap();
        assert_eq!(
            extensions.get("field"),
            Some(&Value::from("evidence (a key)"))
        );
    }
}
