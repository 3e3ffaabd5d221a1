//! Argument values that do not coerce are request errors (docs/design.md#errors): the GraphQL
//! specification refuses a literal of the wrong type in validation ("Values of Correct Type")
//! and a variable that does not coerce before execution (`CoerceVariableValues`). async-graphql
//! checks neither the range of an `Int`, nor a `UUID` or `DateTime`'s text, nor a variable's
//! value until the field runs, so a bad value came back as a field error beside `data`, after
//! the operation's earlier root fields (mutations included) had run.
//!
//! This check runs on the parsed document before anything executes: each argument, written in
//! the document or passed as a variable, against its type in the schema. A value that does not
//! coerce fails the whole request with `BAD_USER_INPUT` naming the argument (and the path in
//! it); HTTP 400 under `application/graphql-response+json`.

use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
};

use async_graphql::{
    Name, Pos, ServerError, ServerResult, Value, Variables,
    parser::types::{
        BaseType, ExecutableDocument, OperationType, Selection, SelectionSet, Type, TypeKind,
        TypeSystemDefinition,
    },
};
use chrono::{DateTime, Utc};

/// What the check needs of the schema: argument types per field, field types per input object,
/// the return type of each field, and the enums' values.
#[derive(Default)]
struct Types {
    /// `(object, field)` → (its named return type, its arguments' types).
    fields: HashMap<(String, String), (String, HashMap<String, Type>)>,
    /// `(object, field, argument)` of the nullable arguments that have a default.
    defaulted: HashSet<(String, String, String)>,
    inputs: HashMap<String, HashMap<String, Type>>,
    enums: HashMap<String, HashSet<String>>,
}

/// The schema's types, read once from its SDL.
fn types() -> &'static Types {
    static TYPES: OnceLock<Types> = OnceLock::new();
    TYPES.get_or_init(|| {
        let sdl = super::build_schema().sdl();
        let mut types = Types::default();
        let Ok(document) = async_graphql::parser::parse_schema(&sdl) else {
            return types;
        };
        for definition in document.definitions {
            let TypeSystemDefinition::Type(definition) = definition else {
                continue;
            };
            let name = definition.node.name.node.to_string();
            match definition.node.kind {
                TypeKind::Object(object) => {
                    for field in object.fields {
                        for argument in &field.node.arguments {
                            let argument = &argument.node;
                            if argument.ty.node.nullable && argument.default_value.is_some() {
                                types.defaulted.insert((
                                    name.clone(),
                                    field.node.name.node.to_string(),
                                    argument.name.node.to_string(),
                                ));
                            }
                        }
                        let arguments = field
                            .node
                            .arguments
                            .iter()
                            .map(|a| (a.node.name.node.to_string(), a.node.ty.node.clone()))
                            .collect();
                        types.fields.insert(
                            (name.clone(), field.node.name.node.to_string()),
                            (named(&field.node.ty.node).to_owned(), arguments),
                        );
                    }
                }
                TypeKind::InputObject(input) => {
                    let fields = input
                        .fields
                        .iter()
                        .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                        .collect();
                    types.inputs.insert(name, fields);
                }
                TypeKind::Enum(values) => {
                    let values = values
                        .values
                        .iter()
                        .map(|v| v.node.value.node.to_string())
                        .collect();
                    types.enums.insert(name, values);
                }
                _ => {}
            }
        }
        types
    })
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Checks every argument of the document's operations against its type.
///
/// # Errors
/// `BAD_USER_INPUT` naming the first argument whose value does not coerce.
pub fn check(document: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
    let types = types();
    for (_, operation) in document.operations.iter() {
        let root = match operation.node.ty {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        // A variable's value: as sent, else its default.
        let mut values: HashMap<&str, Value> = HashMap::new();
        for definition in &operation.node.variable_definitions {
            let name = definition.node.name.node.as_str();
            required(definition, variables)?;
            let value = variables
                .get(&definition.node.name.node)
                .cloned()
                .or_else(|| {
                    definition
                        .node
                        .default_value
                        .as_ref()
                        .map(|d| d.node.clone())
                });
            if let Some(value) = value {
                values.insert(name, value);
            }
        }
        let walk = Walk {
            types,
            document,
            values: &values,
        };
        walk.set(
            &operation.node.selection_set.node,
            root,
            &mut HashSet::new(),
        )?;
    }
    Ok(())
}

/// A variable of a non-null type must be given a value that is not null, unless it has a
/// default and is left out (the specification's `CoerceVariableValues`; graphql-js answers the
/// same). async-graphql would run the operation with the argument's default instead.
fn required(
    definition: &async_graphql::Positioned<async_graphql::parser::types::VariableDefinition>,
    variables: &Variables,
) -> ServerResult<()> {
    let ty = &definition.node.var_type.node;
    if ty.nullable {
        return Ok(());
    }
    let name = &definition.node.name.node;
    let what = match variables.get(name) {
        Some(Value::Null) => "must not be null",
        Some(_) => return Ok(()),
        None if definition.node.default_value.is_some() => return Ok(()),
        None => "was not provided",
    };
    let mut error = ServerError::new(
        format!("Variable \"${name}\" of required type \"{ty}\" {what}."),
        Some(definition.pos),
    );
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "BAD_USER_INPUT");
    extensions.set("field", format!("${name}"));
    Err(error)
}

struct Walk<'a> {
    types: &'a Types,
    document: &'a ExecutableDocument,
    values: &'a HashMap<&'a str, Value>,
}

impl Walk<'_> {
    fn set<'d>(
        &self,
        set: &'d SelectionSet,
        parent: &str,
        spread: &mut HashSet<&'d str>,
    ) -> ServerResult<()>
    where
        Self: 'd,
    {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let Some((returns, arguments)) =
                        self.types.fields.get(&(parent.to_owned(), name.to_owned()))
                    else {
                        continue; // introspection, or a field validation refuses anyway
                    };
                    for (argument, value) in &field.node.arguments {
                        let Some(ty) = arguments.get(argument.node.as_str()) else {
                            continue;
                        };
                        // Null when written so or sent so; a variable left out is not.
                        let given = value.node.clone().into_const_with(|variable| {
                            self.values.get(variable.as_str()).cloned().ok_or(())
                        });
                        let null = matches!(given, Ok(Value::Null));
                        self.not_null_for_default(parent, name, argument, null)?;
                        let value = value
                            .node
                            .clone()
                            .into_const_with(|variable| {
                                Ok::<_, std::convert::Infallible>(
                                    self.values
                                        .get(variable.as_str())
                                        .cloned()
                                        .unwrap_or(Value::Null),
                                )
                            })
                            .unwrap_or(Value::Null);
                        self.value(&value, ty, argument.node.as_str(), argument.pos)?;
                    }
                    self.set(&field.node.selection_set.node, returns, spread)?;
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map_or(parent, |c| c.node.on.node.as_str());
                    self.set(&fragment.node.selection_set.node, on, spread)?;
                }
                Selection::FragmentSpread(spread_node) => {
                    let name = spread_node.node.fragment_name.node.as_str();
                    if !spread.insert(name) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(&Name::new(name)) {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        self.set(&fragment.node.selection_set.node, on, spread)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// An argument that has a default, given an explicit `null` (written, or a variable sent as
    /// `null`). The specification's `CoerceArgumentValues` passes the null on, and only an
    /// argument left out (or given a variable that was left out) takes its default; Roster's
    /// resolvers cannot tell null from left out, and would quietly use the default (a `first:
    /// null` served 20 rows), so null is refused instead.
    fn not_null_for_default(
        &self,
        parent: &str,
        field: &str,
        argument: &async_graphql::Positioned<Name>,
        null: bool,
    ) -> ServerResult<()> {
        let key = (
            parent.to_owned(),
            field.to_owned(),
            argument.node.to_string(),
        );
        if !null || !self.types.defaulted.contains(&key) {
            return Ok(());
        }
        let name = &argument.node;
        let mut error = ServerError::new(
            format!("`{name}` of `{field}` must not be null: leave it out for its default value."),
            Some(argument.pos),
        );
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", "BAD_USER_INPUT");
        extensions.set("field", name.as_str());
        Err(error)
    }

    /// `value` against `ty`, at `path`; nulls are left to async-graphql's own checks.
    fn value(&self, value: &Value, ty: &Type, path: &str, pos: Pos) -> ServerResult<()> {
        if matches!(value, Value::Null) {
            return Ok(());
        }
        match &ty.base {
            BaseType::List(inner) => match value {
                Value::List(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                    self.value(item, inner, &format!("{path}[{i}]"), pos)
                }),
                single => self.value(single, inner, path, pos),
            },
            BaseType::Named(name) => self.named(value, name.as_str(), path, pos),
        }
    }

    fn named(&self, value: &Value, ty: &str, path: &str, pos: Pos) -> ServerResult<()> {
        let refuse = |what: &str| Err(refusal(path, what, pos));
        match ty {
            "Int" => match value {
                Value::Number(n) if n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()) => Ok(()),
                _ => refuse("must be an Int from -2147483648 to 2147483647"),
            },
            "Float" => match value {
                Value::Number(_) => Ok(()),
                _ => refuse("must be a Float"),
            },
            "String" => match value {
                Value::String(_) => Ok(()),
                _ => refuse("must be a String"),
            },
            "ID" => match value {
                Value::String(_) => Ok(()),
                Value::Number(n) if n.is_i64() || n.is_u64() => Ok(()),
                _ => refuse("must be an ID"),
            },
            "Boolean" => match value {
                Value::Boolean(_) => Ok(()),
                _ => refuse("must be a Boolean"),
            },
            "UUID" => match value {
                Value::String(text) if uuid::Uuid::parse_str(text).is_ok() => Ok(()),
                _ => refuse("must be a UUID"),
            },
            "DateTime" => match value {
                Value::String(text) if text.parse::<DateTime<Utc>>().is_ok() => Ok(()),
                _ => refuse("must be an RFC 3339 date and time, such as 2026-01-31T09:00:00Z"),
            },
            "JSON" => Ok(()),
            _ => {
                if let Some(values) = self.types.enums.get(ty) {
                    let given = match value {
                        Value::Enum(name) => Some(name.as_str()),
                        Value::String(text) => Some(text.as_str()),
                        _ => None,
                    };
                    return match given {
                        Some(given) if values.contains(given) => Ok(()),
                        _ => refuse(&format!("must be a {ty}")),
                    };
                }
                let Some(fields) = self.types.inputs.get(ty) else {
                    return Ok(());
                };
                let Value::Object(object) = value else {
                    return refuse(&format!("must be an input object ({ty})"));
                };
                for (key, item) in object {
                    let Some(field_ty) = fields.get(key.as_str()) else {
                        return Err(refusal(
                            &format!("{path}.{key}"),
                            &format!("is not a field of {ty}"),
                            pos,
                        ));
                    };
                    self.value(item, field_ty, &format!("{path}.{key}"), pos)?;
                }
                Ok(())
            }
        }
    }
}

fn refusal(path: &str, what: &str, pos: Pos) -> ServerError {
    let mut error = ServerError::new(format!("{path}: {what}"), Some(pos));
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "BAD_USER_INPUT");
    extensions.set("field", path);
    error
}
