// `sqlx::migrate!` embeds the migrations at compile time, but cargo does not
// know to rebuild when a migration is added or edited; this tells it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
