//! The client commands (`herald templates list | digest`, `herald notifications pause | resume | test |
//! custom`) against a real `herald server` on a free port over a fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use crate::running::{Api, Server, create_user, herald, herald_ok};
use crate::support::{self, TestDatabase};

#[tokio::test(flavor = "multi_thread")]
async fn client_commands_pause_resume_and_send_notifications_through_a_running_server() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let member = create_user(&db.url, "mia", "member");
    let server = Server::start(&db.url, &[]);
    let url = server.url.as_str();
    let api = Api::new(url, &owner);
    let as_owner = ["--url", url, "--token", owner.as_str()];
    let with = |command: &[&'static str]| -> Vec<String> {
        command
            .iter()
            .map(|s| (*s).to_owned())
            .chain(as_owner.iter().map(|s| (*s).to_owned()))
            .collect()
    };
    let run_ok = |command: &[&'static str]| {
        let args = with(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        herald_ok(&args)
    };

    // templates list: a header and one aligned row per template, system and custom.
    let table = run_ok(&["templates", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("GROUP")
            && lines[0].contains("ID")
            && lines[0].contains("ENABLED BY DEFAULT")
            && lines[0].contains("METHOD"),
        "{table}"
    );
    let system = api.get("/notifications/templates/system").await;
    let custom = api.get("/notifications/templates/custom").await;
    let listed = system.as_array().unwrap().len() + custom.as_array().unwrap().len();
    assert_eq!(lines.len(), listed + 1, "{table}");
    let test_template = system
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Test Notification")
        .unwrap();
    let row = lines
        .iter()
        .find(|line| line.starts_with("Test Notification "))
        .unwrap_or_else(|| panic!("no Test Notification row:\n{table}"));
    assert!(
        row.contains(test_template["id"].as_str().unwrap())
            && row.contains(test_template["group"].as_str().unwrap()),
        "{row}"
    );
    let column = lines[0].find("ID").unwrap();
    assert_eq!(
        row.find(test_template["id"].as_str().unwrap()),
        Some(column),
        "the id column is aligned:\n{table}"
    );

    // templates digest: set (shown by the listing and the API), unchanged, cleared; a bad
    // window and a member are refused in one line naming why.
    let id = test_template["id"].as_str().unwrap();
    let digest = |window: &str, token: &str| {
        herald(&[
            "templates",
            "digest",
            id,
            window,
            "--url",
            url,
            "--token",
            token,
        ])
    };
    let (status, out, err) = digest("90m", owner.as_str());
    assert!(status.success(), "{out}{err}");
    assert_eq!(
        out,
        format!(
            "Test Notification ({id}): events are gathered into one message per recipient every 1h30m.\n"
        )
    );
    let listed = api.get("/notifications/templates/system").await;
    let shown = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert_eq!(shown["digest_window"], "1h30m");
    let table = run_ok(&["templates", "list"]);
    let row = table
        .lines()
        .find(|line| line.starts_with("Test Notification "))
        .unwrap();
    assert!(row.ends_with("1h30m"), "{table}");
    let (_, out, _) = digest("1h30m", owner.as_str());
    assert_eq!(
        out,
        format!("The digest window of template {id} is unchanged.\n")
    );
    let (status, _, err) = digest("soon", owner.as_str());
    assert!(!status.success() && err.contains("window"), "{err}");
    let (status, _, err) = digest("1h", member.as_str());
    assert!(!status.success(), "{err}");
    let (status, out, err) = digest("", owner.as_str());
    assert!(status.success(), "{err}");
    assert_eq!(
        out,
        format!("Test Notification ({id}): each event is sent at once.\n")
    );

    // pause / resume, each twice: the second says nothing changed; the settings agree.
    assert_eq!(
        run_ok(&["notifications", "pause"]),
        "notifications paused\n"
    );
    assert_eq!(
        api.get("/notifications/settings").await["notifier_paused"],
        true
    );
    assert_eq!(
        run_ok(&["notifications", "pause"]),
        "notifications were already paused\n"
    );
    assert_eq!(
        run_ok(&["notifications", "resume"]),
        "notifications resumed\n"
    );
    assert_eq!(
        api.get("/notifications/settings").await["notifier_paused"],
        false
    );
    assert_eq!(
        run_ok(&["notifications", "resume"]),
        "notifications were not paused\n"
    );

    // test and custom notifications arrive in the caller's inbox.
    assert_eq!(
        run_ok(&["notifications", "test"]),
        "test notification sent\n"
    );
    let args = with(&["notifications", "custom"]);
    let mut custom_args: Vec<&str> = args.iter().map(String::as_str).collect();
    custom_args.splice(2..2, ["Deploy finished", "All 12 services are up."]);
    assert_eq!(herald_ok(&custom_args), "custom notification sent\n");
    let inbox = api
        .wait_for("/notifications/inbox", Duration::from_secs(20), |page| {
            page["notifications"].as_array().unwrap().len() >= 2
        })
        .await;
    let notifications = inbox["notifications"].as_array().unwrap();
    assert!(
        notifications
            .iter()
            .any(|n| n["title"] == "Deploy finished" && n["content"] == "All 12 services are up."),
        "{inbox}"
    );
    assert!(
        notifications
            .iter()
            .any(|n| n["template_id"] == test_template["id"]),
        "{inbox}"
    );

    // The server's refusal of bad input is one line naming the field.
    let (status, stdout, stderr) = herald(&[
        "notifications",
        "custom",
        "  ",
        "body",
        "--url",
        url,
        "--token",
        &owner,
    ]);
    assert!(!status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herald: content.title:"),
        "names the field: {stderr}"
    );

    // An owner notifies every member and names an unknown user: the members get it, the
    // unknown user is reported.
    let unknown = "00000000-0000-4000-8000-000000000001";
    let (status, stdout, stderr) = herald(&[
        "notifications",
        "custom",
        "Maintenance",
        "Tonight at 22:00.",
        "--role",
        "member",
        "--user",
        unknown,
        "--url",
        url,
        "--token",
        &owner,
    ]);
    assert!(status.success(), "{stderr}");
    let mut lines = stdout.lines();
    assert!(
        lines
            .next()
            .is_some_and(|line| line.starts_with("custom notification sent: ")
                && line.ends_with(" messages queued")),
        "{stdout}"
    );
    assert_eq!(
        lines.collect::<Vec<_>>(),
        [format!("skipped {unknown}: unknown")],
        "{stdout}"
    );
    Api::new(url, &member)
        .wait_for("/notifications/inbox", Duration::from_secs(20), |page| {
            page["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["title"] == "Maintenance")
        })
        .await;

    // A member may not pause: 403, said in one line.
    let (status, _, stderr) = herald(&["notifications", "pause", "--url", url, "--token", &member]);
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herald: not allowed:") && stderr.contains("owner"),
        "{stderr}"
    );
    assert!(!stderr.contains(&member), "{stderr}");

    // The environment variables stand in for the options.
    let output = std::process::Command::new(support::HERALD)
        .args(["notifications", "pause"])
        .env("HERALD_URL", url)
        .env("HERALD_TOKEN", &owner)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "notifications paused\n"
    );

    server.stop();
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_url_or_a_wrong_token_fails_in_one_line_without_showing_the_token() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let server = Server::start(&db.url, &[]);

    // Nothing listens on a port held by a socket that never listens.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let nowhere = format!("http://{}", held.local_addr().unwrap());
    for command in [
        &["templates", "list"][..],
        &["notifications", "pause"][..],
        &["notifications", "test"][..],
        &["notifications", "custom", "t", "m"][..],
    ] {
        let mut args = command.to_vec();
        args.extend(["--url", nowhere.as_str(), "--token", owner.as_str()]);
        let (status, stdout, stderr) = herald(&args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!(
                "herald: cannot connect to the Herald server at {nowhere}"
            )),
            "{stderr}"
        );
        assert!(!stderr.contains(&owner), "the token shows: {stderr}");
    }

    let wrong = format!("{}x", &owner[..owner.len() - 1]);
    for command in [&["templates", "list"][..], &["notifications", "resume"][..]] {
        let mut args = command.to_vec();
        args.extend(["--url", server.url.as_str(), "--token", wrong.as_str()]);
        let (status, stdout, stderr) = herald(&args);
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("herald: "), "{stderr}");
        assert!(
            stderr.contains("token") && stderr.contains("invalid"),
            "{stderr}"
        );
        assert!(!stderr.contains(&wrong), "the token shows: {stderr}");
    }

    // No token at all is a usage error naming the option.
    let (status, _, stderr) = herald(&["notifications", "pause", "--url", &server.url]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");

    // Nothing was changed by the failed attempts.
    let api = Api::new(&server.url, &owner);
    assert_eq!(
        api.get("/notifications/settings").await["notifier_paused"],
        false
    );
    let log = server.stop();
    assert!(!log.contains(&owner), "the server log shows the token");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preferences_commands_list_disable_and_enable_per_template_and_method() {
    let db = TestDatabase::create().await;
    let owner = create_user(&db.url, "olga", "owner");
    let member = create_user(&db.url, "mia", "member");
    let server = Server::start(&db.url, &[]);
    let url = server.url.as_str();
    let as_member = Api::new(url, &member);
    let member_id = as_member.get("/users/me").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = "f517da0b-cdc9-410f-ab89-a86107c420ed";
    let run = |token: &str, command: &[&str]| {
        let mut args = command.to_vec();
        args.extend(["--url", url, "--token", token]);
        herald(&args)
    };
    let ok = |token: &str, command: &[&str]| {
        let (status, stdout, stderr) = run(token, command);
        assert!(status.success(), "{command:?}: {stderr}");
        stdout
    };
    /// The row of Workspace Deleted: its cells, split on the column gaps.
    fn deleted_row(table: &str) -> Vec<String> {
        let row = table
            .lines()
            .find(|line| line.starts_with("Workspace Deleted "))
            .unwrap_or_else(|| panic!("no Workspace Deleted row:\n{table}"));
        row.split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .map(str::to_owned)
            .collect()
    }

    // Nothing set yet: the header only.
    let table = ok(&member, &["preferences", "list"]);
    assert_eq!(table.lines().count(), 1, "{table}");
    assert!(table.starts_with("TEMPLATE"), "{table}");

    // One method off: the others stay on, and the API agrees.
    let table = ok(
        &member,
        &["preferences", "disable", deleted, "--method", "smtp"],
    );
    assert_eq!(
        deleted_row(&table),
        ["Workspace Deleted", deleted, "on", "off", "on", "on"],
        "{table}"
    );
    let stored = as_member.get("/users/me/notifications/preferences").await;
    assert_eq!(stored[0]["methods"]["smtp"], true, "{stored}");
    assert_eq!(stored[0]["methods"]["webhook"], false, "{stored}");

    // Every method off, then the inbox back on.
    ok(&member, &["preferences", "disable", deleted]);
    let table = ok(
        &member,
        &["preferences", "enable", deleted, "--method", "inbox"],
    );
    assert_eq!(
        deleted_row(&table),
        ["Workspace Deleted", deleted, "off", "off", "off", "on"],
        "{table}"
    );

    // An owner reads another user's preferences; a member may not read the owner's.
    let table = ok(&owner, &["preferences", "list", "--user", &member_id]);
    assert_eq!(
        deleted_row(&table),
        ["Workspace Deleted", deleted, "off", "off", "off", "on"],
        "{table}"
    );
    let owner_id = Api::new(url, &owner).get("/users/me").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stdout, stderr) = run(&member, &["preferences", "list", "--user", &owner_id]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A method Herald does not have is refused, naming the field; nothing changes.
    let (status, _, stderr) = run(
        &member,
        &["preferences", "disable", deleted, "--method", "fax"],
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("herald: method_disabled_map"),
        "names the field: {stderr}"
    );
    let after = as_member.get("/users/me/notifications/preferences").await;
    assert_eq!(after[0]["methods"]["inbox"], false, "{after}");

    server.stop();
    db.drop_now().await;
}
