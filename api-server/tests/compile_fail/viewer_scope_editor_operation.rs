//! A claim checked for the viewer role cannot be handed to an editor's operation, nor a scope
//! checked for the editor role to an owner's: the role is part of the type.

use jeex_api::{
    access::{Checked, Editor, Scoped, Viewer},
    db::{documents, members},
};

async fn write(s: &mut Checked<Viewer>, new: &documents::NewDocument) {
    let _ = documents::create(s, new).await;
}

async fn manage(s: &mut Scoped<Editor>) {
    let _ = members::remove(s, uuid::Uuid::nil()).await;
}

fn main() {
    let _ = (write, manage);
}
