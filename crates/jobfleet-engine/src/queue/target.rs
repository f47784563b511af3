//! Where the store is: one Redis node, a Redis Cluster, or a master found through Sentinel,
//! each named by one URL so that `REDIS_URL` can carry any of them.
//!
//! | form                                                            | means                        |
//! |-----------------------------------------------------------------|------------------------------|
//! | `redis://[user:pass@]host:port[/db]`, `rediss://...`            | one node (TLS with `rediss`) |
//! | `redis+unix:///path/to/socket`, `unix:///path`                  | one node on a Unix socket    |
//! | `redis+cluster://[user:pass@]h1:p1,h2:p2,...`                   | a cluster, from seed nodes   |
//! | `rediss+cluster://...`                                          | the same over TLS            |
//! | `redis+sentinel://[user:pass@]s1:p1,s2:p2/<master>[/db][?...]` | Sentinel's current master    |
//! | `rediss+sentinel://...`                                         | the same over TLS            |
//!
//! A `#insecure` fragment (TLS without certificate checks, for self-signed certificates on a
//! private network) applies to every node of a cluster, and under Sentinel to the master and
//! its replicas.
//!
//! A cluster's seed nodes need not be all its nodes, only enough to find one that answers; the
//! rest is learnt from `CLUSTER SLOTS`. In the Sentinel form the hosts are the sentinels (port
//! 26379 unless given), the user and password are the master's, and `sentinel_username` and
//! `sentinel_password` in the query are the sentinels' own, which Redis keeps apart.

use redis::IntoConnectionInfo;

/// A store URL that cannot be used; the message says what is wrong, never the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidTarget(String);

/// The topology a store URL names.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// One node: a `redis://`, `rediss://` or Unix-socket URL, as the redis crate reads it.
    Node(String),
    /// A cluster: one `redis://` (or `rediss://`) URL per seed node, credentials included.
    Cluster(Vec<String>),
    /// A master watched by sentinels.
    Sentinel(SentinelTarget),
}

/// Where Sentinel is and which master it is asked for.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// One `redis://` URL per sentinel, with the sentinels' own credentials.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    pub master: String,
    /// A URL that carries the master's user, password and database (its host is not used).
    pub node: String,
    /// Whether the master and its replicas are reached over TLS.
    pub tls: bool,
    /// TLS without certificate checks (`#insecure`).
    pub insecure: bool,
}

// Targets hold passwords: their Debug names the form and the hosts only.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(_) => f.write_str("Target::Node"),
            Target::Cluster(nodes) => write!(f, "Target::Cluster({} seed nodes)", nodes.len()),
            Target::Sentinel(s) => write!(f, "Target::Sentinel({:?})", s.master),
        }
    }
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("sentinels", &self.sentinels.len())
            .field("master", &self.master)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Reads a store URL (see the module for its forms).
    pub fn parse(url: &str) -> Result<Target, InvalidTarget> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| InvalidTarget("has no scheme (redis://...)".into()))?;
        match scheme {
            "redis" | "rediss" | "redis+unix" | "unix" => {
                url.into_connection_info()
                    .map_err(|e| InvalidTarget(format!("cannot be read: {}", e.kind_name())))?;
                Ok(Target::Node(url.to_owned()))
            }
            "redis+cluster" | "rediss+cluster" => {
                let base = if scheme == "redis+cluster" {
                    "redis"
                } else {
                    "rediss"
                };
                let parts = Parts::split(rest)?;
                if !matches!(parts.path.trim_matches('/'), "" | "0") {
                    return Err(InvalidTarget(
                        "a cluster has only database 0; drop the path".into(),
                    ));
                }
                let nodes = parts.urls(base, 6379, "")?;
                Ok(Target::Cluster(nodes))
            }
            "redis+sentinel" | "rediss+sentinel" => sentinel(scheme == "rediss+sentinel", rest),
            other => Err(InvalidTarget(format!(
                "has scheme {other}://; use redis://, rediss://, redis+unix://, \
                 redis+cluster://, rediss+cluster://, redis+sentinel:// or rediss+sentinel://"
            ))),
        }
    }

    /// The name of the form, for logs and `jobfleet` output: `node`, `cluster`, `sentinel`.
    pub fn mode(&self) -> &'static str {
        match self {
            Target::Node(_) => "node",
            Target::Cluster(_) => "cluster",
            Target::Sentinel(_) => "sentinel",
        }
    }
}

fn sentinel(tls: bool, rest: &str) -> Result<Target, InvalidTarget> {
    let parts = Parts::split(rest)?;
    let mut path = parts.path.trim_matches('/').split('/');
    let master = path.next().unwrap_or_default();
    if master.is_empty() {
        return Err(InvalidTarget(
            "names no master: redis+sentinel://host:26379/<master name>".into(),
        ));
    }
    let db = path.next().unwrap_or("0");
    if db.parse::<u16>().is_err() || path.next().is_some() {
        return Err(InvalidTarget(format!(
            "has path /{}: use /<master name> or /<master name>/<database number>",
            parts.path.trim_matches('/')
        )));
    }
    // The sentinels' credentials come from the query; every other parameter is the master's.
    let (mut sentinel_auth, mut rest_query) = (SentinelAuth::default(), Vec::new());
    for pair in parts.query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_username", v)) => sentinel_auth.user = Some(v.to_owned()),
            Some(("sentinel_password", v)) => sentinel_auth.password = Some(v.to_owned()),
            _ => rest_query.push(pair),
        }
    }
    let sentinel_userinfo = sentinel_auth.userinfo();
    let sentinels = parts
        .hosts
        .iter()
        .map(|h| format!("redis://{sentinel_userinfo}{}/", with_port(h, 26379)))
        .collect::<Vec<_>>();
    for url in &sentinels {
        check(url)?;
    }
    let query = if rest_query.is_empty() {
        String::new()
    } else {
        format!("?{}", rest_query.join("&"))
    };
    let node = format!("redis://{}sentinel-master/{db}{query}", parts.userinfo);
    check(&node)?;
    Ok(Target::Sentinel(SentinelTarget {
        sentinels,
        master: master.to_owned(),
        node,
        tls,
        insecure: !parts.fragment.is_empty(),
    }))
}

#[derive(Default)]
struct SentinelAuth {
    user: Option<String>,
    password: Option<String>,
}

impl SentinelAuth {
    fn userinfo(&self) -> String {
        match (&self.user, &self.password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                user.as_deref().unwrap_or_default(),
                password.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A multi-host URL's pieces after the scheme: `userinfo@h1,h2/path?query`.
struct Parts<'a> {
    /// `user:pass@`, or empty.
    userinfo: &'a str,
    hosts: Vec<&'a str>,
    path: &'a str,
    query: &'a str,
    /// `#insecure`, or empty.
    fragment: &'a str,
}

impl<'a> Parts<'a> {
    fn split(rest: &'a str) -> Result<Self, InvalidTarget> {
        let (rest, fragment) = match rest.rfind('#') {
            Some(i) if &rest[i..] == "#insecure" => (&rest[..i], &rest[i..]),
            _ => (rest, ""),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // A password may hold '@': the hosts begin after the last one.
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(i) => (&authority[..=i], &authority[i + 1..]),
            None => ("", authority),
        };
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if hosts.iter().any(|h| h.is_empty()) {
            return Err(InvalidTarget(
                "names no host, or an empty one between commas".into(),
            ));
        }
        Ok(Self {
            userinfo,
            hosts,
            path,
            query,
            fragment,
        })
    }

    /// One single-node URL per host, each with the userinfo and `query`.
    fn urls(&self, scheme: &str, port: u16, path: &str) -> Result<Vec<String>, InvalidTarget> {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        self.hosts
            .iter()
            .map(|h| {
                let url = format!(
                    "{scheme}://{}{}/{path}{query}{}",
                    self.userinfo,
                    with_port(h, port),
                    self.fragment
                );
                check(&url).map(|()| url)
            })
            .collect()
    }
}

/// `host` with `port` added when it names none (`[::1]` and `::1` style hosts included).
fn with_port(host: &str, port: u16) -> String {
    let has_port = match host.rfind(']') {
        Some(i) => host[i..].contains(':'),
        None => host.contains(':'),
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

fn check(url: &str) -> Result<(), InvalidTarget> {
    url.into_connection_info().map(|_| ()).map_err(|e| {
        InvalidTarget(format!(
            "has a node URL that cannot be read ({})",
            e.kind_name()
        ))
    })
}

/// The kind of a redis error, without its detail (which may quote the URL).
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_node_urls_stay_as_they_are() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://:pw@h:6380/2",
            "unix:///tmp/r.sock",
        ] {
            assert_eq!(
                Target::parse(url).unwrap(),
                Target::Node(url.into()),
                "{url}"
            );
        }
    }

    #[test]
    fn a_cluster_url_becomes_one_url_per_seed_node() {
        let t = Target::parse("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002").unwrap();
        assert_eq!(
            t,
            Target::Cluster(vec![
                "redis://:s3cret@10.0.0.1:7000/".into(),
                "redis://:s3cret@10.0.0.2:6379/".into(),
                "redis://:s3cret@[::1]:7002/".into(),
            ])
        );
        let tls = Target::parse("rediss+cluster://h:7000").unwrap();
        assert_eq!(tls, Target::Cluster(vec!["rediss://h:7000/".into()]));
        let insecure = Target::parse("rediss+cluster://h1:7000,h2:7000/#insecure").unwrap();
        assert_eq!(
            insecure,
            Target::Cluster(vec![
                "rediss://h1:7000/#insecure".into(),
                "rediss://h2:7000/#insecure".into()
            ])
        );
        assert_eq!(tls.mode(), "cluster");
        assert!(Target::parse("redis+cluster://h:7000/3").is_err());
        assert!(Target::parse("redis+cluster://h:7000,,h2").is_err());
    }

    #[test]
    fn a_sentinel_url_keeps_the_two_passwords_apart() {
        let t = Target::parse(
            "rediss+sentinel://app:masterpw@s1,s2:26380/mymaster/2?sentinel_password=sentpw",
        )
        .unwrap();
        let Target::Sentinel(s) = t else {
            panic!("not sentinel")
        };
        assert_eq!(
            s.sentinels,
            vec!["redis://:sentpw@s1:26379/", "redis://:sentpw@s2:26380/"]
        );
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.node, "redis://app:masterpw@sentinel-master/2");
        assert!(s.tls && !s.insecure);
        let info = s.node.as_str().into_connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("masterpw"));
        assert_eq!(info.redis_settings().db(), 2);
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for (url, says) in [
            ("redis+sentinel://s1:26379", "names no master"),
            ("redis+sentinel://s1/m/x", "has path /m/x"),
            ("http://:pw@h", "has scheme http://"),
            ("127.0.0.1:6379", "has no scheme"),
        ] {
            let err = Target::parse(url).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("pw"), "{url}: {err}");
        }
    }

    #[test]
    fn debug_shows_no_password() {
        let t = Target::parse("redis+sentinel://:pw@s1/m?sentinel_password=spw").unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("pw"), "{shown}");
    }
}
