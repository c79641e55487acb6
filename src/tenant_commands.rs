//! The `tenant` and `apikey` commands of the `callgate` binary: what they
//! print and refuse.
//!
//! A new key is printed once, on stdout, and never again: only its keyed
//! hash is stored. Everything else goes to stderr through the caller.

use anyhow::{Context as _, bail};
use callgate::http::admin::{api_key, validate};
use callgate::recording::keys::KeyRing;
use callgate::store::{Actor, Role, Store};

pub async fn create(store: &Store, id: &str) -> anyhow::Result<()> {
    validate::id("tenant", id).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !store.create_tenant(id).await? {
        bail!("tenant {id} already exists");
    }
    println!("tenant {id} created");
    Ok(())
}

/// The role of `--role`, checked against `--tenant`: operator keys have no
/// tenant, the others need one.
pub fn parse_role(role: &str, tenant: Option<&str>) -> Result<Role, String> {
    let role = match role {
        "admin" => Role::Admin,
        "read" => Role::Read,
        "operator" => Role::Operator,
        other => return Err(format!("--role {other:?}: must be admin, read or operator")),
    };
    match (role, tenant) {
        (Role::Operator, Some(_)) => Err("--tenant: operator keys belong to no tenant".into()),
        (Role::Admin | Role::Read, None) => {
            Err("--tenant: required for admin and read keys".into())
        }
        _ => Ok(role),
    }
}

pub async fn create_key(
    store: &Store,
    keys: &KeyRing,
    tenant: Option<&str>,
    role: Role,
) -> anyhow::Result<()> {
    if let Some(tenant) = tenant {
        if !store.tenant_exists(tenant).await? {
            bail!("no tenant {tenant}: create it first with `callgate tenant create {tenant}`");
        }
    }
    let (text, record) = api_key::generate(keys, tenant, role);
    store
        .insert_api_key(&record, &Actor::Cli)
        .await
        .context("cannot store the key")?;
    println!("{}", text.as_str());
    eprintln!(
        "callgate: {role} key {} created; it is shown only this once",
        record.id
    );
    Ok(())
}

pub async fn revoke_key(store: &Store, id: &str) -> anyhow::Result<()> {
    let id = id.strip_prefix("cg_").unwrap_or(id);
    let id = id.split('_').next().unwrap_or(id);
    if !store.revoke_api_key(id, &Actor::Cli).await? {
        bail!("no active key {id}");
    }
    println!("key {id} revoked");
    Ok(())
}

pub async fn list_keys(store: &Store, tenant: &str) -> anyhow::Result<()> {
    for key in store.api_keys(tenant).await? {
        let state = match key.revoked_at_ms {
            Some(_) => "revoked",
            None => "active",
        };
        println!("{}\t{}\t{state}", key.id, key.role);
    }
    Ok(())
}
