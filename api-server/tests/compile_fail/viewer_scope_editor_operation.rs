//! A scope checked for the viewer role cannot be handed to an editor's operation, nor to an
//! owner's: the role is part of the scope's type.

use jeex_api::{
    access::{Editor, Scoped, Viewer},
    db::{documents, members},
};

async fn write(s: &mut Scoped<Viewer>, new: &documents::NewDocument) {
    let _ = documents::create(s, new).await;
}

async fn manage(s: &mut Scoped<Editor>) {
    let _ = members::remove(s, uuid::Uuid::nil()).await;
}

fn main() {
    let _ = (write, manage);
}
