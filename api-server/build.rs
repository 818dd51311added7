//! The migrations are compiled into the binary (`sqlx::migrate!`); a new or changed migration
//! must rebuild it even when no Rust source changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
