//! Roles, and role levels as types.

use poem_openapi::Enum;

/// A member's role, weakest first (so `>=` means "at least").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Enum, sqlx::Type)]
#[oai(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    /// Reads everything in the project.
    Viewer,
    /// Also creates, changes and deletes documents and edits the project.
    Editor,
    /// Also manages members and API keys, reads the audit log and deletes the project.
    Owner,
}

impl Role {
    /// The role's name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }
}

/// A role level as a type: the least role a scope was checked for.
pub trait Level: Send + Sync + 'static {
    /// The role this level stands for.
    const ROLE: Role;
}

/// `Self` is at least `Min`: a scope checked for `Self` may do what `Min` may.
pub trait Admits<Min: Level>: Level {}

/// Checked for at least the viewer role (every member).
#[derive(Debug, Clone, Copy)]
pub struct Viewer;
/// Checked for at least the editor role.
#[derive(Debug, Clone, Copy)]
pub struct Editor;
/// Checked for the owner role.
#[derive(Debug, Clone, Copy)]
pub struct Owner;

impl Level for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl Level for Editor {
    const ROLE: Role = Role::Editor;
}
impl Level for Owner {
    const ROLE: Role = Role::Owner;
}

impl Admits<Viewer> for Viewer {}
impl Admits<Viewer> for Editor {}
impl Admits<Viewer> for Owner {}
impl Admits<Editor> for Editor {}
impl Admits<Editor> for Owner {}
impl Admits<Owner> for Owner {}
