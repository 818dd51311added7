//! `/api/v1/projects/{project_id}/members`: listing for every member, changes for owners.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{
    ApiTags,
    access::project,
    responses::{Created, Deleted, MemberList},
    text::Text,
    validation::Check,
    views::Member,
};
use crate::{
    access::{Owner, Role, Viewer},
    db::{members, page::Page},
    error::ApiError,
    state::AppState,
};

/// A user to add.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct AddMember {
    /// Email of the user; someone without an account yet is invited (they join on first sign-in).
    #[oai(validator(max_length = 254, pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+$"))]
    pub email: Text,
    /// Their role.
    pub role: Role,
}

impl poem_openapi::types::Example for AddMember {
    fn example() -> Self {
        Self { email: "bea@example.com".into(), role: Role::Editor }
    }
}

/// The answer to adding a member: the same fields whether or not the address had an account.
/// Neither the user's id (a UUIDv7 dates the account) nor their name is told here, so adding
/// is no way to learn who has signed up; the member list shows the member from now on.
#[derive(Object)]
#[oai(example)]
pub struct AddedMember {
    /// The address, normalised to lower case.
    pub email: String,
    /// Their role.
    pub role: Role,
    /// When they were added.
    pub added_at: DateTime<Utc>,
}

impl poem_openapi::types::Example for AddedMember {
    fn example() -> Self {
        Self { email: "bea@example.com".into(), role: Role::Editor, added_at: "2026-11-24T09:30:00Z".parse().unwrap_or_default() }
    }
}

/// A role change.
#[derive(Object)]
#[oai(example)]
#[oai(deny_unknown_fields)]
pub struct UpdateMember {
    /// The new role.
    pub role: Role,
}

/// Member endpoints.
pub struct MembersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Members")]
impl MembersApi {
    /// The project's members.
    #[oai(path = "/projects/:project_id/members", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<MemberList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let paged = project_id.read(&state, async |e| members::list(e, &page).await).await?;
        Ok(Json(paged.into()))
    }

    /// Add a member by email (owner only), inviting them if they have no account yet; 409 when
    /// already a member. The answer is the same for an address with and without an account;
    /// `Location` is the member list, where the member now appears.
    #[oai(path = "/projects/:project_id/members", method = "post")]
    async fn add(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        body: Json<AddMember>,
    ) -> Result<Created<AddedMember>, ApiError> {
        let mut check = Check::default();
        let email = check.email("/email", &body.email);
        check.finish()?;
        let mut s = project_id.open(&state).await?;
        let member = members::add(&mut s, &email, body.role).await?;
        s.commit().await?;
        let location = format!("/api/v1/projects/{}/members", project_id.id());
        let added = AddedMember { email: member.email, role: member.role, added_at: member.created_at };
        Ok(Created::Created(Json(added), location, None))
    }

    /// Change a member's role (owner only); the last owner cannot be demoted (409).
    #[oai(path = "/projects/:project_id/members/:user_id", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        user_id: Path<Uuid>,
        body: Json<UpdateMember>,
    ) -> Result<Json<Member>, ApiError> {
        let mut s = project_id.open(&state).await?;
        let member = members::set_role(&mut s, user_id.0, body.role).await?;
        s.commit().await?;
        Ok(Json(member.into()))
    }

    /// Remove a member (owner only); the last owner cannot be removed (409).
    #[oai(path = "/projects/:project_id/members/:user_id", method = "delete")]
    async fn remove(&self, state: Data<&AppState>, project_id: project::Path<Owner>, user_id: Path<Uuid>) -> Result<Deleted, ApiError> {
        let mut s = project_id.open(&state).await?;
        members::remove(&mut s, user_id.0).await?;
        s.commit().await?;
        Ok(Deleted::NoContent)
    }
}

impl poem_openapi::types::Example for UpdateMember {
    fn example() -> Self {
        Self { role: Role::Viewer }
    }
}
