//! `cafe user add NAME --role ROLE`: a staff account added straight to identity's database
//! (the all-in-one cafe's under `--data-dir`, or `DATABASE_URL`), the password read from
//! stdin so it never shows in a process list or a shell history.

use std::io::BufRead;

use anyhow::Context;
use contracts::ServiceName;
use platform::Db;

use crate::cli::{UserAddArgs, UserCommand};

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args).await,
    }
}

async fn add(args: UserAddArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let db = match &args.database_url {
        Some(url) => Db::connect_or_create(url, 1).await,
        None => Db::sqlite_file(&args.data_dir, ServiceName::Identity.as_str()).await,
    }
    .context("cannot open identity's database")?;
    db.migrate(identity::MIGRATIONS).await.context("cannot migrate identity's database")?;
    identity::add_user(&db, &args.name, password, args.role).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("cafe: added {} as a {}", args.name, args.role);
    Ok(())
}
