//! The `tenant` and `apikey` commands of the `callgate` binary: what they
//! print and refuse.
//!
//! `tenant allow` sets where a tenant's numbers may call; `*` stands for
//! "any" (every route, or any number outside the high-cost ranges).
//!
//! A new key is printed once, on stdout, and never again: only its keyed
//! hash is stored. Everything else goes to stderr through the caller.

use anyhow::{Context as _, bail};
use callgate::config::Config;
use callgate::dialing::{self, Allowance};
use callgate::http::admin::{api_key, validate};
use callgate::keys::KeyRing;
use callgate::store::{Actor, Role, Store};

/// A command line these commands refuse before touching the store.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("--prefixes: {0:?} is not a '+' and 1 to 15 digits (such as +1)")]
    BadPrefix(String),
    #[error("--role {0:?}: must be admin, read or operator")]
    UnknownRole(String),
    #[error("--tenant: operator keys belong to no tenant")]
    OperatorWithTenant,
    #[error("--tenant: required for admin and read keys")]
    TenantRequired,
}

pub async fn create(store: &Store, id: &str) -> anyhow::Result<()> {
    validate::id("tenant", id).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !store.create_tenant(id).await? {
        bail!("tenant {id} already exists");
    }
    println!("tenant {id} created");
    Ok(())
}

/// The allowance `--routes` and `--prefixes` describe (each `*` or a
/// comma-separated list); prefixes are checked here, routes against the
/// node's config in [`allow`].
pub fn parse_allowance(
    routes: Option<&str>,
    prefixes: Option<&str>,
) -> Result<Allowance, UsageError> {
    let list = |text: Option<&str>| match text.map(str::trim) {
        None | Some("*") => None,
        Some(text) => Some(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
    };
    let (routes, prefixes) = (list(routes), list(prefixes));
    if let Some(bad) = prefixes
        .iter()
        .flatten()
        .find(|p| !dialing::valid_prefix(p))
    {
        return Err(UsageError::BadPrefix(bad.clone()));
    }
    Ok(Allowance { routes, prefixes })
}

/// Gives tenant `id` its own allowance, or (`None`) the node's default.
pub async fn allow(
    store: &Store,
    config: &Config,
    id: &str,
    allowance: Option<Allowance>,
) -> anyhow::Result<()> {
    let routes = allowance.as_ref().and_then(|a| a.routes.as_deref());
    if let Some(unknown) = routes
        .into_iter()
        .flatten()
        .find(|r| config.route(r).is_none())
    {
        bail!("--routes: no route {unknown:?} in this config");
    }
    if !store
        .set_tenant_allowance(id, allowance.as_ref(), &Actor::Cli)
        .await?
    {
        bail!("no tenant {id}");
    }
    let applies = allowance.unwrap_or_else(|| config.limits.default_allowance());
    let any = |list: Option<Vec<String>>| list.map_or_else(|| "*".to_owned(), |l| l.join(","));
    println!(
        "tenant {id} may call: routes {}, prefixes {}",
        any(applies.routes),
        any(applies.prefixes)
    );
    Ok(())
}

/// The role of `--role`, checked against `--tenant`: operator keys have no
/// tenant, the others need one.
pub fn parse_role(role: &str, tenant: Option<&str>) -> Result<Role, UsageError> {
    let role = match role {
        "admin" => Role::Admin,
        "read" => Role::Read,
        "operator" => Role::Operator,
        other => return Err(UsageError::UnknownRole(other.to_owned())),
    };
    match (role, tenant) {
        (Role::Operator, Some(_)) => Err(UsageError::OperatorWithTenant),
        (Role::Admin | Role::Read, None) => Err(UsageError::TenantRequired),
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
