//! Is the server's database role safe to serve with? Row-level security does not bind
//! superusers or BYPASSRLS roles, and a role that owns tables could alter or drop them.

use super::Database;

/// What the server's role may do beyond its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSafety {
    /// `current_user`.
    pub role: String,
    /// Superuser: every policy is skipped.
    pub superuser: bool,
    /// BYPASSRLS: every policy is skipped.
    pub bypass_rls: bool,
    /// Owns at least one table of the schema (every table, a new one included), itself or
    /// through a role it belongs to.
    pub owns_tables: bool,
}

impl RoleSafety {
    /// What is unsafe about the role, if anything.
    pub fn problem(&self) -> Option<String> {
        let mut powers = Vec::new();
        if self.superuser {
            powers.push("is a superuser");
        }
        if self.bypass_rls {
            powers.push("has BYPASSRLS");
        }
        if self.owns_tables {
            powers.push("owns the tables");
        }
        (!powers.is_empty()).then(|| {
            format!(
                "the DATABASE_URL role {:?} {}: row-level security and least privilege do not hold; \
                 connect as a role that `jeex-api migrate` granted (see JEEX_MIGRATE_DATABASE_URL)",
                self.role,
                powers.join(" and ")
            )
        })
    }
}

/// Reads the facts about `current_user`.
pub async fn inspect(db: &Database) -> Result<RoleSafety, sqlx::Error> {
    sqlx::query_as!(
        RoleSafety,
        r#"SELECT current_user::text AS "role!", r.rolsuper AS "superuser!", r.rolbypassrls AS "bypass_rls!",
                  EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = current_schema()
                          AND pg_has_role(current_user, t.tableowner, 'USAGE')) AS "owns_tables!"
           FROM pg_roles r WHERE r.rolname = current_user"#
    )
    .fetch_one(db.exec())
    .await
}
