//! The registry's errors: Confluent Schema Registry's HTTP statuses, error codes and messages
//! (its clients show the message and branch on the code), in one place.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error {})", self.message, self.code)
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

fn err(status: u16, code: u32, message: impl Into<String>) -> RegistryError {
    RegistryError {
        status,
        code,
        message: message.into(),
    }
}

impl RegistryError {
    /// The JSON body Confluent answers errors with.
    pub fn body(&self) -> String {
        serde_json::json!({"error_code": self.code, "message": self.message}).to_string()
    }

    pub fn unauthorized() -> RegistryError {
        err(401, 401, "Unauthorized")
    }
    /// Authenticated, but refused all the same (with tenants: the login selects no tenant).
    pub fn unauthorized_because(why: &str) -> RegistryError {
        err(401, 401, format!("Unauthorized: {why}"))
    }
    pub fn denied(principal: &str, operation: &str, resource: &str) -> RegistryError {
        err(
            403,
            40301,
            format!("User {principal} is denied operation {operation} on {resource}"),
        )
    }
    pub fn not_found(what: &str) -> RegistryError {
        err(404, 404, format!("HTTP 404 Not Found: {what}"))
    }
    pub fn method_not_allowed() -> RegistryError {
        err(405, 405, "HTTP 405 Method Not Allowed")
    }
    pub fn subject_not_found(subject: &str) -> RegistryError {
        err(404, 40401, format!("Subject '{subject}' not found."))
    }
    pub fn version_not_found(subject: &str, version: i32) -> RegistryError {
        err(
            404,
            40402,
            format!("Version {version} not found for subject '{subject}'."),
        )
    }
    pub fn schema_not_found() -> RegistryError {
        err(404, 40403, "Schema not found")
    }
    pub fn schema_id_not_found(id: i64) -> RegistryError {
        err(404, 40403, format!("Schema {id} not found"))
    }
    pub fn subject_soft_deleted(subject: &str) -> RegistryError {
        err(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        )
    }
    pub fn subject_not_soft_deleted(subject: &str) -> RegistryError {
        err(
            404,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }
    pub fn version_soft_deleted(subject: &str, version: i32) -> RegistryError {
        err(
            404,
            40406,
            format!("Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently"),
        )
    }
    pub fn version_not_soft_deleted(subject: &str, version: i32) -> RegistryError {
        err(
            404,
            40407,
            format!("Subject '{subject}' Version {version} was not deleted first before being permanently deleted"),
        )
    }
    pub fn subject_level_compatibility_not_configured(subject: &str) -> RegistryError {
        err(
            404,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )
    }
    pub fn subject_level_mode_not_configured(subject: &str) -> RegistryError {
        err(
            404,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )
    }
    pub fn incompatible(message: String) -> RegistryError {
        err(409, 409, message)
    }
    pub fn id_conflict(id: i64) -> RegistryError {
        err(
            409,
            40901,
            format!("Schema id {id} is already registered with a different schema"),
        )
    }
    pub fn invalid_schema(why: impl fmt::Display) -> RegistryError {
        err(422, 42201, format!("Invalid schema: {why}"))
    }
    pub fn invalid_version(version: &str) -> RegistryError {
        err(
            422,
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    }
    pub fn invalid_compatibility_level() -> RegistryError {
        err(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
        )
    }
    pub fn invalid_mode(mode: &str) -> RegistryError {
        err(
            422,
            42204,
            format!("Invalid mode {mode}. Valid values are READWRITE, READONLY and IMPORT"),
        )
    }
    pub fn not_permitted(why: impl Into<String>) -> RegistryError {
        err(422, 42205, why)
    }
    pub fn referenced(subject: &str, version: i32) -> RegistryError {
        err(
            422,
            42206,
            format!("One or more references exist to the schema {{subject={subject},version={version}}}."),
        )
    }
    pub fn bad_request(why: impl fmt::Display) -> RegistryError {
        err(422, 422, format!("Unprocessable Entity: {why}"))
    }
    pub fn store(why: impl fmt::Display) -> RegistryError {
        err(
            500,
            50001,
            format!("Error in the backend data store: {why}"),
        )
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::store(e)
    }
}
