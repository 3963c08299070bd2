//! `convene erase`: erases a contact through a running server's API
//! (`DELETE /v1/contacts/{id}?erase=true` or by identity), so that the
//! server's own applier drains its inbox first; prints the audit record.

use std::process::ExitCode;

/// Flags of `convene erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The server's base URL.
    #[arg(long, env = "CONVENE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key with `contacts:write`.
    #[arg(long, env = "CONVENE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The contact's id.
    #[arg(long, group = "who")]
    pub id: Option<i64>,
    /// The contact's email.
    #[arg(long, group = "who")]
    pub email: Option<String>,
    /// The contact's phone number.
    #[arg(long, group = "who")]
    pub mobile: Option<String>,
    /// The contact's external id.
    #[arg(long, group = "who")]
    pub external_id: Option<String>,
}

fn target_url(args: &EraseArgs) -> Result<String, String> {
    let base = args.url.trim_end_matches('/');
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    match (args.id, &args.email, &args.mobile, &args.external_id) {
        (Some(id), None, None, None) => Ok(format!("{base}/v1/contacts/{id}?erase=true")),
        (None, Some(v), None, None) => Ok(format!("{base}/v1/contacts?erase=true&email={}", enc(v))),
        (None, None, Some(v), None) => Ok(format!("{base}/v1/contacts?erase=true&mobile={}", enc(v))),
        (None, None, None, Some(v)) => Ok(format!("{base}/v1/contacts?erase=true&external_id={}", enc(v))),
        _ => Err("name the contact by exactly one of --id, --email, --mobile, --external-id".into()),
    }
}

/// Runs `convene erase`.
pub async fn run(args: EraseArgs) -> ExitCode {
    let url = match target_url(&args) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("convene erase: {e}");
            return ExitCode::FAILURE;
        }
    };
    let answer = reqwest::Client::new().delete(&url).bearer_auth(&args.token).send().await;
    match answer {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if status.is_success() {
                println!("{body}");
                ExitCode::SUCCESS
            } else {
                eprintln!("convene erase: {status}: {body}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("convene erase: cannot reach {}: {e}", args.url);
            ExitCode::FAILURE
        }
    }
}
