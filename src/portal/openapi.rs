//! The OpenAPI 3.1 description of `/api/v1`, served at
//! `/api/v1/openapi.json`. Written here by hand from the typed request
//! and response structs of `api`, `password`, `mfa`, `tokens`, `sessions`
//! and `admin`; a test sends every operation it lists through the router
//! (each must exist and ask for authentication), so the description
//! cannot name a route that is not there.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// `GET /api/v1/openapi.json` (no authentication: it holds no data).
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        description().to_string(),
    )
        .into_response()
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn body(name: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema(name) } } })
}

/// An answer with a JSON body of schema `name` (or an array of it).
fn answer(text: &str, name: Option<&str>, array: bool) -> Value {
    match name {
        None => json!({ "description": text }),
        Some(n) => {
            let s = if array {
                json!({ "type": "array", "items": schema(n) })
            } else {
                schema(n)
            };
            json!({ "description": text, "content": { "application/json": { "schema": s } } })
        }
    }
}

/// One operation: its summary, request body, success status and body, and
/// the refusals it may answer besides 401.
fn op(
    summary: &str,
    request: Option<&str>,
    status: &str,
    response: Option<&str>,
    array: bool,
    errors: &[&str],
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(status.into(), answer("success", response, array));
    let error = |text: &str| answer(text, Some("Error"), false);
    responses.insert(
        "401".into(),
        error("no session cookie and no live API token (an app password is no token)"),
    );
    for code in errors {
        let text = match *code {
            "400" => "the request breaks a rule (the text says which)",
            "403" => "not allowed, a wrong password, or a cookie write without X-CSRF-Token",
            "404" => "no such item of the caller's",
            "409" => "taken already",
            _ => "refused",
        };
        responses.insert((*code).into(), error(text));
    }
    let mut o = json!({ "summary": summary, "responses": responses });
    if let Some(r) = request {
        o["requestBody"] = body(r);
    }
    o
}

fn id_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
}

fn with_params(mut o: Value, names: &[&str]) -> Value {
    o["parameters"] = Value::Array(names.iter().map(|n| id_param(n)).collect());
    o
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

fn object(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// The description.
pub fn description() -> Value {
    let time = || json!({ "type": ["string", "null"], "format": "date-time" });
    let schemas = json!({
        "Error": object(&["error"], json!({ "error": string() })),
        "CanChange": object(&["username", "name", "email"], json!({
            "username": { "type": "boolean" }, "name": { "type": "boolean" }, "email": { "type": "boolean" } })),
        "Me": object(&["username", "dn", "can_change"], json!({
            "username": string(), "name": nullable_string(), "email": nullable_string(),
            "dn": string(), "locale": nullable_string(), "can_change": schema("CanChange") })),
        "MePatch": object(&[], json!({
            "username": string(), "name": string(), "email": string(),
            "locale": { "type": "string", "description": "\"\" for auto-detect" } })),
        "PasswordChange": object(&["current", "new"], json!({ "current": string(), "new": string() })),
        "Session": object(&["id", "kind", "address", "current"], json!({
            "id": string(), "kind": { "enum": ["portal", "ldap"] }, "address": string(),
            "created": time(), "last_seen": time(), "user_agent": string(),
            "current": { "type": "boolean" } })),
        "Device": object(&["id", "label", "confirmed", "kind"], json!({
            "id": string(), "label": string(), "created": time(), "confirmed": { "type": "boolean" },
            "last_used": time(), "kind": { "enum": ["totp", "static"] },
            "digits": { "type": "integer" }, "tokens_left": { "type": "integer" } })),
        "TotpBegun": object(&["id", "secret", "uri", "digits", "period", "algorithm"], json!({
            "id": string(), "secret": { "type": "string", "description": "base32, shown once" },
            "uri": { "type": "string", "description": "otpauth:// URI for a QR code" },
            "digits": { "type": "integer" }, "period": { "type": "integer" }, "algorithm": string() })),
        "TotpConfirm": object(&["code"], json!({ "code": string(), "name": string() })),
        "StaticTokens": object(&["id", "tokens"], json!({
            "id": string(), "tokens": { "type": "array", "items": string(), "description": "shown once" } })),
        "DeviceDelete": object(&["password"], json!({ "password": { "type": "string", "description": "the account password" } })),
        "DeviceRename": object(&["name"], json!({ "name": string() })),
        "CredentialCreate": object(&["label"], json!({
            "label": string(),
            "expires": { "type": ["string", "null"],
                "description": "a duration (30d, 12h, 2w) or a day (2027-01-31); absent: the default lifetime" } })),
        "CredentialCreated": object(&["id", "label", "secret"], json!({
            "id": string(), "label": string(), "secret": { "type": "string", "description": "shown once" },
            "expires": time() })),
        "Credential": object(&["id", "label"], json!({
            "id": string(), "label": string(), "created": time(), "expires": time(),
            "last_used": time(), "last_used_from": string() })),
        "User": object(&["id", "username", "dn", "disabled", "groups"], json!({
            "id": string(), "username": string(), "dn": string(), "full_name": nullable_string(),
            "email": nullable_string(), "uid_number": { "type": "integer" }, "gid_number": { "type": "integer" },
            "disabled": { "type": "boolean" }, "groups": { "type": "array", "items": string() },
            "attrs": { "type": "object", "additionalProperties": string() },
            "created": time(), "modified": time(), "pwd_changed": time() })),
        "UserPatch": object(&[], json!({ "disabled": { "type": "boolean" }, "enabled": { "type": "boolean" } })),
        "Group": object(&["id", "name", "dn", "members"], json!({
            "id": string(), "name": string(), "dn": string(), "gid_number": { "type": "integer" },
            "description": nullable_string(), "members": { "type": "array", "items": string() },
            "child_groups": { "type": "array", "items": string() },
            "parent_groups": { "type": "array", "items": string() },
            "created": time(), "modified": time() })),
    });
    let credentials = |noun: &str| {
        (
            json!({
                "get": op(&format!("The caller's {noun}s (never the secrets)"), None, "200", Some("Credential"), true, &[]),
                "post": op(&format!("Create an {noun}; its secret is in this answer only"),
                    Some("CredentialCreate"), "201", Some("CredentialCreated"), false, &["400", "403"]),
            }),
            json!({
                "delete": with_params(op(&format!("Revoke an {noun}: refused at once"), None, "204", None, false, &["403", "404"]), &["id"]),
            }),
        )
    };
    let (apps, app) = credentials("app password");
    let (tokens, token) = credentials("API token");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Portcullis portal API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The self-service portal's JSON API (shared/PORTAL.md). Requests authenticate \
                with the session cookie (writes also need the X-CSRF-Token header, the content of the \
                page's <meta name=\"csrf-token\">) or with Authorization: Bearer <API token>. Errors are \
                {\"error\": \"...\"}.",
        },
        "security": [ { "cookie": [], "csrfHeader": [] }, { "bearer": [] } ],
        "components": {
            "securitySchemes": {
                "cookie": { "type": "apiKey", "in": "cookie", "name": super::SESSION_COOKIE },
                "csrfHeader": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                    "description": "required with the cookie on every method but GET and HEAD" },
                "bearer": { "type": "http", "scheme": "bearer", "description": "an API token (pctk_…)" },
            },
            "schemas": schemas,
        },
        "paths": {
            "/api/v1/me": {
                "get": op("The caller's details and what they may change", None, "200", Some("Me"), false, &[]),
                "patch": op("Change the caller's details (only fields they may change)", Some("MePatch"), "200", Some("Me"), false, &["400", "403", "409"]),
            },
            "/api/v1/me/password": {
                "post": op("Change the caller's password (the current one first); other portal sessions end",
                    Some("PasswordChange"), "204", None, false, &["400", "403"]),
            },
            "/api/v1/me/sessions": {
                "get": op("The caller's portal sessions and LDAP connections", None, "200", Some("Session"), true, &[]),
            },
            "/api/v1/me/sessions/{id}": {
                "delete": with_params(op("End a portal session (signed out at its next request) or close an LDAP connection",
                    None, "204", None, false, &["403", "404"]), &["id"]),
            },
            "/api/v1/me/mfa": {
                "get": op("The caller's confirmed second factors", None, "200", Some("Device"), true, &[]),
            },
            "/api/v1/me/mfa/totp": {
                "post": op("Start a TOTP enrolment: a pending device and its secret", None, "201", Some("TotpBegun"), false, &["403"]),
            },
            "/api/v1/me/mfa/totp/{id}/confirm": {
                "post": with_params(op("Confirm a pending TOTP device with a current code (a wrong code changes nothing)",
                    Some("TotpConfirm"), "200", Some("Device"), false, &["400", "403", "404"]), &["id"]),
            },
            "/api/v1/me/mfa/static": {
                "post": op("A new set of six static tokens, replacing the old set", None, "201", Some("StaticTokens"), false, &["403"]),
            },
            "/api/v1/me/mfa/{id}": {
                "patch": with_params(op("Rename a device", Some("DeviceRename"), "200", Some("Device"), false, &["400", "403", "404"]), &["id"]),
                "delete": with_params(op("Delete a device (the account password confirms)", Some("DeviceDelete"), "204", None, false, &["403", "404"]), &["id"]),
            },
            "/api/v1/me/app-passwords": apps,
            "/api/v1/me/app-passwords/{id}": app,
            "/api/v1/me/tokens": tokens,
            "/api/v1/me/tokens/{id}": token,
            "/api/v1/users": {
                "get": op("Every user (admins)", None, "200", Some("User"), true, &["403"]),
            },
            "/api/v1/users/{username}": {
                "get": with_params(op("One user (admins)", None, "200", Some("User"), false, &["403", "404"]), &["username"]),
                "patch": with_params(op("Enable or disable a user (admins; never the last enabled admin)",
                    Some("UserPatch"), "200", Some("User"), false, &["400", "403", "404"]), &["username"]),
            },
            "/api/v1/users/{username}/sessions": {
                "get": with_params(op("A user's sessions (admins, or the user)", None, "200", Some("Session"), true, &["403", "404"]), &["username"]),
            },
            "/api/v1/users/{username}/sessions/{id}": {
                "delete": with_params(op("End a user's session (admins, or the user)", None, "204", None, false, &["403", "404"]), &["username", "id"]),
            },
            "/api/v1/groups": {
                "get": op("Every group (admins)", None, "200", Some("Group"), true, &["403"]),
            },
            "/api/v1/groups/{name}/members/{username}": {
                "post": with_params(op("Add a user to a group (admins)", None, "200", Some("Group"), false, &["403", "404"]), &["name", "username"]),
                "delete": with_params(op("Remove a user from a group (admins; never the last enabled admin)", None, "200", Some("Group"), false, &["400", "403", "404"]), &["name", "username"]),
            },
        },
    })
}
