//! `convene users create`: makes a console user (the first admin) straight
//! in the database, with the same core checks and password hashing as the
//! API (`api::users::create_with_password`).

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use convene_core::page::PageRequest;
use convene_core::password::Password;
use convene_core::user::UserChanges;
use convene_core::{Error, Store};
use convene_store_postgres::PgStore;
use convene_store_sqlite::SqliteStore;
use serde_json::{Map, Value};

use crate::config::{Database, ServeConfig, UsersCreateArgs};

/// Why the command failed (printed, exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Bad flags or configuration.
    #[error("{0}")]
    Usage(String),
    /// The store refused.
    #[error("{0}")]
    Store(#[from] Error),
    /// Reading the password failed.
    #[error("cannot read the password: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the configured store.
pub async fn open_store(config: &ServeConfig) -> Result<Arc<dyn Store>, UsersError> {
    std::fs::create_dir_all(&config.data_dir)?;
    Ok(match &config.database {
        Database::Sqlite(path) => {
            let (path, options) = (path.clone(), config.sqlite.clone());
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path, options))
                .await
                .map_err(|e| UsersError::Usage(e.to_string()))??;
            Arc::new(store)
        }
        Database::Postgres(url) => Arc::new(PgStore::connect(url.expose(), config.postgres.clone()).await?),
    })
}

/// Finds a workspace by id, else by exact name (one match only).
pub async fn workspace(store: &dyn Store, wanted: &str) -> Result<String, UsersError> {
    if let Ok(ws) = store.get_workspace(wanted).await {
        return Ok(ws.id);
    }
    let mut matches = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_workspaces(PageRequest::parse(cursor.as_deref(), Some(1000))?).await?;
        matches.extend(page.items.into_iter().filter(|w| w.name == wanted).map(|w| w.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(UsersError::Usage(format!("no workspace with id or name '{wanted}'"))),
        _ => Err(UsersError::Usage(format!("several workspaces are named '{wanted}': give the id"))),
    }
}

/// The password: prompted twice on a terminal, else the first line of stdin.
fn read_password(from_stdin: bool) -> Result<Password, UsersError> {
    let stdin = std::io::stdin();
    let text = if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            return Err(UsersError::Usage("the two passwords differ".into()));
        }
        first
    };
    Ok(Password::new(&text)?)
}

/// Runs `convene users create`; returns the line to print.
pub async fn create(args: UsersCreateArgs) -> Result<String, UsersError> {
    let config = ServeConfig::resolve(args.server).map_err(|e| UsersError::Usage(e.to_string()))?;
    let role = if args.admin { "admin".to_string() } else { args.role.unwrap_or_else(|| "agent".into()) };
    let name = args.name.unwrap_or_else(|| args.email.split('@').next().unwrap_or(&args.email).to_string());
    let mut body = Map::new();
    body.insert("name".into(), Value::String(name));
    body.insert("email".into(), Value::String(args.email));
    body.insert("role".into(), Value::String(role));
    let mut changes = UserChanges::from_json(body)?;
    changes.password = Some(read_password(args.password_stdin)?);
    let store = open_store(&config).await?;
    let ws = workspace(&*store, &args.workspace).await?;
    let user = crate::api::users::create_with_password(&*store, &ws, changes).await?;
    Ok(format!(
        "convene: created {} user {} (id {}) in workspace {ws}; log in at /console/login",
        user.role.as_str(),
        user.email,
        user.id
    ))
}
