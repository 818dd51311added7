//! `/api/v1/projects`: the caller's projects.

use poem::web::Data;
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Query},
    payload::Json,
};

use super::{
    ApiTags,
    access::project,
    etag,
    responses::{Created, Deleted, ProjectList, Tagged},
    text::Text,
    validation::Check,
    views::{self, ProjectStatus},
};
use crate::{
    access::{Editor, Owner, Viewer},
    auth::principal::Auth,
    db::{
        page::Page,
        projects::{self, NewProject, ProjectChanges},
    },
    error::ApiError,
    state::AppState,
};

/// Longest project name, in characters.
pub const NAME_MAX: usize = 200;

/// A new project.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct CreateProject {
    /// Name, 1–200 characters (trimmed).
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub name: Text,
    /// Language code, default `en`.
    #[oai(validator(pattern = r"^[a-z]{2}(-[A-Z]{2})?$"))]
    pub language: Option<Text>,
}

impl poem_openapi::types::Example for CreateProject {
    fn example() -> Self {
        Self { name: "Website relaunch".into(), language: Some("en".into()) }
    }
}

/// Changes to a project; omitted fields stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct UpdateProject {
    /// New name.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    ))]
    pub name: Option<Text>,
    /// New status.
    pub status: Option<ProjectStatus>,
    /// New workflow step (1–100).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub current_step: Option<i32>,
    /// New language code.
    #[oai(validator(pattern = r"^[a-z]{2}(-[A-Z]{2})?$"))]
    pub language: Option<Text>,
}

impl poem_openapi::types::Example for UpdateProject {
    fn example() -> Self {
        Self { name: None, status: Some(ProjectStatus::Active), current_step: Some(2), language: None }
    }
}

/// Project endpoints.
pub struct ProjectsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// Create a project; the caller becomes its owner.
    #[oai(path = "/projects", method = "post")]
    async fn create(&self, state: Data<&AppState>, auth: Auth, body: Json<CreateProject>) -> Result<Created<views::Project>, ApiError> {
        let mut check = Check::default();
        let new = NewProject {
            name: check.text("/name", &body.name, NAME_MAX),
            language: check.language("/language", body.language.as_deref().unwrap_or("en")),
        };
        check.finish()?;
        let tx = state.deps().db.user(&auth.0).await?;
        let project = projects::create(tx, &new).await?;
        let location = format!("/api/v1/projects/{}", project.id);
        let tag = etag::of(project.version);
        Ok(Created::Created(Json(project.into()), location, Some(tag)))
    }

    /// The caller's projects, newest first.
    #[oai(path = "/projects", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Only projects in this status.
        status: Query<Option<ProjectStatus>>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<ProjectList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let mut tx = state.deps().db.user(&auth.0).await?;
        let paged = projects::list_mine(&mut tx, status.0.map(Into::into), &page).await?;
        tx.commit().await?;
        Ok(Json(paged.into()))
    }

    /// One project.
    #[oai(path = "/projects/:project_id", method = "get")]
    async fn get(&self, state: Data<&AppState>, project_id: project::Path<Viewer>) -> Result<Tagged<views::Project>, ApiError> {
        let project = project_id.read(&state, projects::read).await?;
        let tag = etag::of(project.version);
        Ok(Tagged::Ok(Json(project.into()), tag))
    }

    /// Change a project (editor or owner). With `If-Match`, only if it is unchanged (else 412).
    #[oai(path = "/projects/:project_id", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Editor>,
        /// `ETag` from a previous read.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<UpdateProject>,
    ) -> Result<Tagged<views::Project>, ApiError> {
        let mut check = Check::default();
        let changes = ProjectChanges {
            name: body.name.as_deref().map(|n| check.text("/name", n, NAME_MAX)),
            status: body.status.map(Into::into),
            current_step: body.current_step.inspect(|s| check.range("/current_step", *s, 1, 100)),
            language: body.language.as_deref().map(|l| check.language("/language", l)),
        };
        check.finish()?;
        let expected = etag::if_match(if_match.0.as_deref());
        let mut s = project_id.open(&state).await?;
        let project = projects::update(&mut s, &changes, expected.as_deref()).await?;
        s.commit().await?;
        let tag = etag::of(project.version);
        Ok(Tagged::Ok(Json(project.into()), tag))
    }

    /// Delete a project (owner only; a soft delete). With `If-Match`, only if it is unchanged.
    #[oai(path = "/projects/:project_id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Owner>,
        /// `ETag` from a previous read.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<Deleted, ApiError> {
        let expected = etag::if_match(if_match.0.as_deref());
        let mut s = project_id.open(&state).await?;
        projects::delete(&mut s, expected.as_deref()).await?;
        s.commit().await?;
        Ok(Deleted::NoContent)
    }
}
