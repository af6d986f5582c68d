//! The attacker proves itself on real wireguard-go, without meshd: a flood of initiations with a
//! valid mac1 puts wireguard-go under load, so it answers with cookie replies, which the
//! attacker must decrypt; with init-mac2 it puts those cookies on its initiations, which
//! wireguard-go then takes without a cookie reply.

use meshd_e2e::attack::{use_attacker_bin, Attacker, Kind, Summary};
use meshd_e2e::topo::pair;
use meshd_e2e::{require_root, Key, WgGo};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;
/// Initiations a second: well above what wireguard-go's handshake workers keep up with on a
/// small machine, so that its queue fills and it goes under load.
const RATE: u64 = 100_000;
const SECS: f64 = 2.0;

fn flood(kind: Kind) -> Summary {
    let (attacker, target) = pair(false);
    let key = Key::generate();
    let _wg = WgGo::start(&target.ns, &key, PORT);
    let to = SocketAddr::new(target.addr, PORT);
    let summary = Attacker::spawn(&attacker.ns, to, &key, kind, RATE, SECS)
        .wait(Duration::from_secs_f64(SECS + 10.0));
    eprintln!("{}: {}", kind.as_str(), summary.to_json());
    assert!(
        summary.sent as f64 > RATE as f64 * SECS * 0.5,
        "the attacker sent too little: {summary:?}"
    );
    summary
}

#[test]
fn init_mac1_gets_cookies_and_init_mac2_uses_them() {
    if !require_root() {
        return;
    }
    use_attacker_bin(env!("CARGO_BIN_EXE_meshd-attacker"));

    let mac1 = flood(Kind::InitMac1);
    assert!(
        mac1.cookie_replies > 0,
        "wireguard-go never went under load: {mac1:?}"
    );
    // Every cookie reply answers an initiation of ours and opens with its mac1.
    assert_eq!(mac1.cookies_bad, 0, "{mac1:?}");
    assert_eq!(mac1.cookies_decrypted, mac1.cookie_replies, "{mac1:?}");
    assert_eq!((mac1.mac2_sent, mac1.cookies_used), (0, 0), "{mac1:?}");

    let mac2 = flood(Kind::InitMac2);
    assert!(mac2.cookies_decrypted > 0, "{mac2:?}");
    assert_eq!(mac2.cookies_bad, 0, "{mac2:?}");
    assert_eq!(
        mac2.cookies_used, 1,
        "one cookie secret in two seconds: {mac2:?}"
    );
    assert!(mac2.mac2_sent > mac2.sent / 2, "{mac2:?}");
    // A valid mac2 gets past wireguard-go's cookie check: it answers only what was sent
    // before the first cookie came back, where init-mac1 gets a cookie for every initiation
    // its load check sees.
    assert!(
        mac2.cookie_replies * 4 < mac1.cookie_replies,
        "wireguard-go kept sending cookies: did it refuse the mac2? init-mac1 {mac1:?}, \
         init-mac2 {mac2:?}"
    );
}

#[test]
fn sigterm_ends_the_flood_with_its_summary() {
    if !require_root() {
        return;
    }
    use_attacker_bin(env!("CARGO_BIN_EXE_meshd-attacker"));
    let (attacker, target) = pair(false);
    let key = Key::generate();
    let _wg = WgGo::start(&target.ns, &key, PORT);
    let to = SocketAddr::new(target.addr, PORT);
    let mut flood = Attacker::spawn(&attacker.ns, to, &key, Kind::Garbage, 20_000, 60.0);
    std::thread::sleep(Duration::from_secs(1));
    assert!(flood.is_running());
    let summary = flood.stop();
    assert!(summary.secs < 5.0, "{summary:?}");
    assert!(summary.sent > 10_000, "{summary:?}");
    let kinds: Vec<&str> = summary.sent_by_kind.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["data", "random", "short_handshake"], "{summary:?}");
}
