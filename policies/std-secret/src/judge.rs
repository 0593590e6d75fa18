//! Judging one secret value: placeholders, key formats, password strength. Every message
//! describes the value (its length, its kind of problem) and never quotes it.

/// What a secret is, from its declared `kind` or guessed from a variable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DjangoSecretKey,
    Fernet,
    /// Random key bytes in base64, standard or URL-safe (`base64.b64encode(os.urandom(32))`).
    Base64Key,
    /// An HMAC key for JWT: the hash size in bits (256, 384 or 512).
    Jwt(u16),
    Password,
    ApiKey,
    Token,
    Url,
    Generic,
}

impl Kind {
    /// A declared kind (`/secrets/NAME/kind`).
    pub fn parse(kind: &str) -> Kind {
        match kind {
            "django-secret-key" => Kind::DjangoSecretKey,
            "fernet" => Kind::Fernet,
            "base64-key" => Kind::Base64Key,
            "jwt-hs256" => Kind::Jwt(256),
            "jwt-hs384" => Kind::Jwt(384),
            "jwt-hs512" => Kind::Jwt(512),
            "password" => Kind::Password,
            "api-key" => Kind::ApiKey,
            "token" => Kind::Token,
            "url" => Kind::Url,
            _ => Kind::Generic,
        }
    }

    /// The spelling of `secret NAME kind=…`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DjangoSecretKey => "django-secret-key",
            Kind::Fernet => "fernet",
            Kind::Base64Key => "base64-key",
            Kind::Jwt(384) => "jwt-hs384",
            Kind::Jwt(512) => "jwt-hs512",
            Kind::Jwt(_) => "jwt-hs256",
            Kind::Password => "password",
            Kind::ApiKey => "api-key",
            Kind::Token => "token",
            Kind::Url => "url",
            Kind::Generic => "generic",
        }
    }
}

/// Name endings that hold settings about a secret, not the secret itself.
const NOT_SECRET_SUFFIXES: &[&str] = &[
    "_FILE",
    "_PATH",
    "_DIR",
    "_ID",
    "_NAME",
    "_USER",
    "_USERNAME",
    "_HOST",
    "_PORT",
    "_ALGORITHM",
    "_ALGORITHMS",
    "_BACKEND",
    "_HEADER",
    "_PREFIX",
    "_LENGTH",
    "_TTL",
    "_EXPIRY",
    "_EXPIRES",
    "_LIFETIME",
    "_TIMEOUT",
    "_SECONDS",
    "_ENABLED",
    "_TYPE",
    "_MODE",
    "_VERSION",
    "_REGION",
    "_COOKIE_NAME",
    "_ROTATION",
];

/// Guesses whether a variable holds a secret from its name (`SECRET_KEY`, `DB_PASSWORD`,
/// `STRIPE_API_KEY`, `GITHUB_TOKEN`, `SENTRY_DSN` …), and what kind.
pub fn kind_from_name(name: &str, jwt_algorithm: Option<&str>) -> Option<Kind> {
    // Uppercased on the stack (names are short), then plain byte comparisons: this runs for
    // every variable of the spec and of every rendered file, where allocating and setting up
    // substring searchers would cost more than the comparisons.
    let mut buffer = [0u8; 64];
    let heap;
    let upper: &[u8] = match buffer.get_mut(..name.len()) {
        Some(upper) => {
            upper.copy_from_slice(name.as_bytes());
            upper.make_ascii_uppercase();
            upper
        }
        None => {
            heap = name.to_ascii_uppercase();
            heap.as_bytes()
        }
    };
    let n = Name::new(upper);
    if NOT_SECRET_SUFFIXES.iter().any(|s| n.ends_with(s))
        || n.contains("PUBLIC")
        || n.contains("PUBLISHABLE")
    {
        return None;
    }
    let mut base = upper;
    while let Some(rest) = base.strip_prefix(b"DJANGO_") {
        base = rest;
    }
    if matches!(base, b"SECRET_KEY" | b"SECRET_KEY_FALLBACKS") {
        return Some(Kind::DjangoSecretKey);
    }
    if n.contains("FERNET")
        || matches!(
            upper,
            b"ENCRYPTION_KEY" | b"ENCRYPTION_KEYS" | b"FIELD_ENCRYPTION_KEY"
        )
    {
        return Some(Kind::Fernet);
    }
    if n.contains("JWT") && (n.contains("SECRET") || n.ends_with("SIGNING_KEY")) {
        let bits = match jwt_algorithm.map(str::to_ascii_uppercase).as_deref() {
            Some("HS384") => 384,
            Some("HS512") => 512,
            _ => 256,
        };
        return Some(Kind::Jwt(bits));
    }
    if n.contains("PASSWORD") || n.contains("PASSWD") || n.ends_with("_PASS") || n.ends_with("_PWD")
    {
        return Some(Kind::Password);
    }
    if n.contains("TOKEN") {
        return Some(Kind::Token);
    }
    if n.contains("API_KEY") || n.contains("APIKEY") || n.ends_with("ACCESS_KEY") {
        return Some(Kind::ApiKey);
    }
    if n.ends_with("_DSN") {
        return Some(Kind::Url);
    }
    if n.contains("SECRET")
        || n.contains("PRIVATE_KEY")
        || n.contains("CREDENTIAL")
        || n.ends_with("_KEY")
        || n.ends_with("_AUTH")
    {
        return Some(Kind::Generic);
    }
    None
}

/// A short name, searched byte by byte (`str::contains` and `str::ends_with`, without their
/// setup cost), with the set of its bytes to rule most words out at once.
#[derive(Clone, Copy)]
struct Name<'a>(&'a [u8], u64);

/// The bytes of `bytes`, a bit each (modulo 64: a set that may hold more).
fn byte_set(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |set, &b| set | 1 << (b & 63))
}

impl<'a> Name<'a> {
    fn new(name: &'a [u8]) -> Self {
        Name(name, byte_set(name))
    }

    fn ends_with(self, suffix: &str) -> bool {
        let (n, s) = (self.0, suffix.as_bytes());
        if n.len() < s.len() {
            return false;
        }
        let tail = &n[n.len() - s.len()..];
        // From the end: most names differ in their last byte.
        (0..s.len()).rev().all(|i| tail[i] == s[i])
    }

    fn contains(self, word: &str) -> bool {
        let (n, w) = (self.0, word.as_bytes());
        if w.is_empty() {
            return true;
        }
        byte_set(w) & !self.1 == 0
            && n.len() >= w.len()
            && (0..=n.len() - w.len()).any(|i| n[i] == w[0] && n[i..i + w.len()] == *w)
    }
}

/// `url.split_once("://")`, without a substring searcher (it runs for every rendered value).
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let bytes = url.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|&b| b == b':') {
        let at = from + i;
        if bytes[at + 1..].starts_with(b"//") {
            return Some((&url[..at], &url[at + 3..]));
        }
        from = at + 1;
    }
    None
}

/// The password of a URL with credentials (`scheme://user:password@host/…`), if it has one.
pub fn url_password(url: &str) -> Option<&str> {
    // No `@`, no credentials (a quick test: this runs for every rendered value).
    if !url.as_bytes().contains(&b'@') {
        return None;
    }
    let (_, rest) = split_scheme(url)?;
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The denylist of secret.no-placeholder (detect-secrets' and gitleaks' stop words, Django's
/// `django-insecure-` prefix, redis.conf's `foobared`). Words of four letters or more count
/// when contained anywhere; shorter ones only as a whole word.
const DENYLIST: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replaceme",
    "replace_me",
    "your-secret-key",
    "your_secret_key",
    "yoursecretkey",
    "secret",
    "password",
    "passw0rd",
    "default",
    "example",
    "sample",
    "dummy",
    "test",
    "todo",
    "xxx",
    "foobar",
    "foobared",
    "django-insecure-",
    "insecure",
];

/// Why a value is a placeholder, if it is one. `name` is the variable's name.
pub fn placeholder(value: &str, name: &str) -> Option<&'static str> {
    let v = value.trim();
    if v.is_empty() {
        return Some("is empty");
    }
    if is_template(v) {
        return Some("is a template placeholder (like `<…>`, `{…}`, `${…}`, `{{…}}` or `%(…)s`)");
    }
    if v.eq_ignore_ascii_case(name) {
        return Some("equals its own variable name");
    }
    let lower = v.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    for word in DENYLIST {
        let hit = if word.len() >= 4 {
            lower.contains(word)
        } else {
            words
                .iter()
                .any(|w| w == word || (w.len() >= 3 && w.bytes().all(|b| b == b'x')))
        };
        if hit {
            return Some(
                "contains a placeholder word from kiln's denylist (`changeme`, `secret`, `example`, `test` …)",
            );
        }
    }
    if is_repeated(&lower) {
        return Some("repeats a short pattern (like `aaaa…` or `abab…`)");
    }
    if is_sequential(&lower) {
        return Some("is a sequential run of characters (like `abcdef…` or `0123…`)");
    }
    if has_run(&lower, 6) {
        return Some("contains a run of six or more repeated or consecutive characters");
    }
    None
}

fn is_template(v: &str) -> bool {
    let pairs = [("${", "}"), ("{{", "}}"), ("%(", ")s"), ("$(", ")")];
    for (open, close) in pairs {
        if v.find(open)
            .is_some_and(|i| v[i + open.len()..].contains(close))
        {
            return true;
        }
    }
    // `<your key here>` or `{SECRET}`: three or more letters between the brackets.
    for (open, close) in [('<', '>'), ('{', '}')] {
        let mut rest = v;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + 1..];
            let Some(j) = after.find(close) else { break };
            let inner = &after[..j];
            let wordish = inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _-.".contains(c));
            if wordish && inner.chars().filter(char::is_ascii_alphabetic).count() >= 3 {
                return true;
            }
            rest = &after[j..];
        }
    }
    false
}

/// `aaaa`, `abab ab`, `abcabcabc`: the whole value is a unit of 1 to 4 characters repeated.
fn is_repeated(v: &str) -> bool {
    let chars: Vec<char> = v.chars().collect();
    if chars.len() < 4 {
        return false;
    }
    (1..=4).any(|unit| {
        chars.len() >= unit * 3
            && chars.len() % unit == 0
            && chars.chunks(unit).all(|c| c == &chars[..unit])
    })
}

/// `abcdef`, `0123456`, `987654`: each character one after (or before) the previous.
fn is_sequential(v: &str) -> bool {
    let bytes = v.as_bytes();
    bytes.len() >= 4
        && bytes.iter().all(u8::is_ascii_alphanumeric)
        && [1i16, -1].iter().any(|step| {
            bytes
                .windows(2)
                .all(|w| i16::from(w[1]) - i16::from(w[0]) == *step)
        })
}

/// A run of `n` or more identical or consecutive characters anywhere in the value.
fn has_run(v: &str, n: usize) -> bool {
    let bytes = v.as_bytes();
    for step in [0i16, 1, -1] {
        let mut run = 1;
        for w in bytes.windows(2) {
            let consecutive = w[0].is_ascii_alphanumeric()
                && w[1].is_ascii_alphanumeric()
                && i16::from(w[1]) - i16::from(w[0]) == step;
            run = if consecutive { run + 1 } else { 1 };
            if run >= n {
                return true;
            }
        }
    }
    false
}

/// Strict URL-safe base64 (RFC 4648 §5) with padding, as Fernet keys are written. Returns the
/// decoded length, or `None` when the text is not canonical URL-safe base64.
fn urlsafe_b64_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &bytes[..bytes.len() - pad];
    let value = |b: u8| -> Option<u8> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        })
    };
    let mut last = 0;
    for &b in body {
        last = value(b)?;
    }
    // The unused low bits of the last character must be zero (canonical encoding).
    let unused_mask = match pad {
        1 => 0b11,
        2 => 0b1111,
        _ => 0,
    };
    if last & unused_mask != 0 {
        return None;
    }
    Some(body.len() * 6 / 8)
}

/// Lenient base64 (standard or URL-safe alphabet, padding optional): the decoded length.
fn any_b64_len(text: &str) -> Option<usize> {
    let body = text.trim_end_matches('=');
    if body.is_empty() || body.len() % 4 == 1 || text.len() - body.len() > 2 {
        return None;
    }
    let standard = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    let urlsafe = body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (standard || urlsafe).then_some(body.len() * 6 / 8)
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How many bytes of key material an HMAC key holds: hex decodes to half its length, base64
/// to three quarters, anything else counts its UTF-8 bytes.
pub fn key_bytes(text: &str) -> (usize, &'static str) {
    if is_hex(text) {
        (text.len() / 2, "hex")
    } else if let Some(n) = any_b64_len(text) {
        (n, "base64")
    } else {
        (text.len(), "raw")
    }
}

/// The floor of a `base64-key`: 256 bits, what AES-256 and HMAC-SHA256 take.
const BASE64_KEY_BYTES: usize = 32;
/// The floor of a `token`: 32 characters, 192 bits even in base64 (OWASP: at least 128).
const TOKEN_CHARS: usize = 32;
/// The floor of an `api-key`: shorter than any key a provider issues.
const API_KEY_CHARS: usize = 16;

/// A key-format problem of a value of `kind` named `name`, if any.
pub fn key_format(value: &str, kind: Kind, name: &str) -> Option<String> {
    match kind {
        Kind::DjangoSecretKey => {
            let keys: Vec<&str> = if name.to_ascii_uppercase().ends_with("FALLBACKS") {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .collect()
            } else {
                vec![value]
            };
            for (i, key) in keys.iter().enumerate() {
                let which = if keys.len() > 1 {
                    format!("{name} (key {} of {})", i + 1, keys.len())
                } else {
                    name.to_owned()
                };
                let len = key.chars().count();
                if key.starts_with("django-insecure-") {
                    return Some(format!(
                        "{which} starts with `django-insecure-`, the prefix of the key `startproject` writes for development"
                    ));
                }
                if len < 50 {
                    return Some(format!(
                        "{which} is {len} characters long; a django-secret-key needs at least 50"
                    ));
                }
                let mut distinct: Vec<char> = key.chars().collect();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() < 5 {
                    return Some(format!(
                        "{which} has only {} distinct characters; a django-secret-key needs at least 5",
                        distinct.len()
                    ));
                }
            }
            None
        }
        Kind::Fernet => {
            let keys: Vec<&str> = value.split(',').map(str::trim).collect();
            for (i, key) in keys.iter().enumerate() {
                let which = if keys.len() > 1 {
                    format!(
                        "{name} (key {} of {} in the MultiFernet list)",
                        i + 1,
                        keys.len()
                    )
                } else {
                    name.to_owned()
                };
                match urlsafe_b64_len(key) {
                    Some(32) => {}
                    Some(n) => {
                        return Some(format!(
                            "{which} decodes to {n} bytes; a Fernet key is exactly 32 bytes of URL-safe base64 (44 characters)"
                        ));
                    }
                    None => {
                        return Some(format!(
                            "{which} is not URL-safe base64 with padding; a Fernet key is exactly 32 bytes of URL-safe base64 (44 characters)"
                        ));
                    }
                }
            }
            None
        }
        Kind::Base64Key => match any_b64_len(value) {
            Some(n) if n >= BASE64_KEY_BYTES => None,
            Some(n) => Some(format!(
                "{name} decodes to {n} bytes; a base64-key needs at least {BASE64_KEY_BYTES} random bytes (`base64.b64encode(os.urandom(32))`)"
            )),
            None => Some(format!(
                "{name} is not base64 (standard or URL-safe); a base64-key is at least {BASE64_KEY_BYTES} random bytes in base64"
            )),
        },
        Kind::Token => {
            let len = value.chars().count();
            (len < TOKEN_CHARS).then(|| {
                format!(
                    "{name} is {len} characters long; a token needs at least {TOKEN_CHARS} (`secrets.token_urlsafe(32)` makes 43)"
                )
            })
        }
        Kind::ApiKey => {
            let len = value.chars().count();
            (len < API_KEY_CHARS).then(|| {
                format!(
                    "{name} is {len} characters long; no provider issues API keys under {API_KEY_CHARS} characters"
                )
            })
        }
        Kind::Jwt(bits) => {
            let need = usize::from(bits / 8);
            let (have, how) = key_bytes(value);
            (have < need).then(|| {
                format!(
                    "{name} holds {have} bytes of key material (read as {how}); HS{bits} needs at least {need}"
                )
            })
        }
        _ => None,
    }
}

/// Shannon entropy in bits per character.
pub fn entropy(text: &str) -> f64 {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return 0.0;
    }
    let mut sorted = chars.clone();
    sorted.sort_unstable();
    let n = chars.len() as f64;
    let mut h = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let j = sorted[i..].iter().take_while(|&&c| c == sorted[i]).count();
        let p = j as f64 / n;
        h -= p * p.log2();
        i += j;
    }
    h
}

/// The entropy a random value of this class and length reaches: detect-secrets' 4.5 bits per
/// character for base64-class values and 3.0 for hex, gitleaks' 3.5 for anything else, capped
/// below what random values reach at that length and alphabet (`log2(length) − 1.1` and
/// `log2(alphabet) − 1.2`): a short string cannot reach 4.5 bits however random it is (a
/// random 32-character base64 value averages 4.56), and random hex averages under 4.
pub fn entropy_floor(text: &str) -> (f64, &'static str) {
    let n = text.chars().count().max(1) as f64;
    let (limit, alphabet, class): (f64, f64, &str) = if text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        (3.0, 16.0, "hex")
    } else if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=_-".contains(&b))
    {
        (4.5, 64.0, "base64")
    } else {
        (3.5, 94.0, "generic")
    };
    (limit.min(n.log2() - 1.1).min(alphabet.log2() - 1.2), class)
}

/// A strength problem of a password, if any: (is it an error, the message).
pub fn strength(value: &str, name: &str, min: usize, recommended: usize) -> Option<(bool, String)> {
    let len = value.chars().count();
    if len < min {
        return Some((
            true,
            format!("{name} is {len} characters long; passwords need at least {min}"),
        ));
    }
    if len < recommended {
        return Some((
            false,
            format!("{name} is {len} characters long; {recommended} or more is recommended"),
        ));
    }
    let h = entropy(value);
    let (floor, class) = entropy_floor(value);
    (h < floor).then(|| {
        (
            false,
            format!(
                "{name} does not look random: {h:.1} bits of entropy per character, where a random {class} value of its length has at least {floor:.1}"
            ),
        )
    })
}

#[cfg(test)]
mod tests {

    /// tulia's own documented command (`base64.b64encode(os.urandom(32))`, standard base64)
    /// makes valid base64-keys; Fernet would refuse most of them (issue 15: 30 of 40).
    #[test]
    fn base64_keys_and_length_floors() {
        let standard = "q+8x/0ZkR2b3c4d5e6f7g8h9i0j1k2l3m4n5o6p7q8r="; // 32 bytes, `+` and `/`
        assert_eq!(any_b64_len(standard), Some(32));
        assert_eq!(
            key_format(standard, Kind::Base64Key, "ENCRYPTION_KEY"),
            None
        );
        assert!(key_format(standard, Kind::Fernet, "ENCRYPTION_KEY").is_some());
        let short = key_format("c2hvcnQ=", Kind::Base64Key, "K").expect("5 bytes");
        assert!(short.contains("decodes to 5 bytes"), "{short}");
        assert!(key_format("not base64!", Kind::Base64Key, "K").is_some());
        assert!(key_format("x", Kind::Token, "T").is_some_and(|m| m.contains("1 characters")));
        assert_eq!(key_format(&"t".repeat(43), Kind::Token, "T"), None);
        assert!(key_format("x", Kind::ApiKey, "A").is_some());
        assert_eq!(
            key_format("sk_live_0123456789abcdef", Kind::ApiKey, "A"),
            None
        );
    }
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(
            kind_from_name("SECRET_KEY", None),
            Some(Kind::DjangoSecretKey)
        );
        assert_eq!(
            kind_from_name("DJANGO_SECRET_KEY_FALLBACKS", None),
            Some(Kind::DjangoSecretKey)
        );
        assert_eq!(kind_from_name("FERNET_KEYS", None), Some(Kind::Fernet));
        assert_eq!(kind_from_name("ENCRYPTION_KEY", None), Some(Kind::Fernet));
        assert_eq!(kind_from_name("JWT_SECRET", None), Some(Kind::Jwt(256)));
        assert_eq!(
            kind_from_name("SIMPLE_JWT_SIGNING_KEY", Some("hs512")),
            Some(Kind::Jwt(512))
        );
        assert_eq!(kind_from_name("DB_PASSWORD", None), Some(Kind::Password));
        assert_eq!(kind_from_name("ADMIN_PASS", None), Some(Kind::Password));
        assert_eq!(kind_from_name("GITHUB_TOKEN", None), Some(Kind::Token));
        assert_eq!(kind_from_name("STRIPE_API_KEY", None), Some(Kind::ApiKey));
        assert_eq!(
            kind_from_name("AWS_SECRET_ACCESS_KEY", None),
            Some(Kind::ApiKey)
        );
        assert_eq!(kind_from_name("SENTRY_DSN", None), Some(Kind::Url));
        assert_eq!(kind_from_name("WEBHOOK_SECRET", None), Some(Kind::Generic));
        assert_eq!(kind_from_name("SIGNING_KEY", None), Some(Kind::Generic));
        for not_secret in [
            "DEBUG",
            "SECRET_KEY_FILE",
            "JWT_ALGORITHM",
            "TOKEN_EXPIRY",
            "STRIPE_PUBLISHABLE_KEY",
            "VAPID_PUBLIC_KEY",
            "AWS_ACCESS_KEY_ID",
            "EMAIL_HOST_USER",
            "SESSION_COOKIE_SECURE",
            "CACHE_KEY_PREFIX",
            "DATABASE_URL",
        ] {
            assert_eq!(kind_from_name(not_secret, None), None, "{not_secret}");
        }
    }

    #[test]
    fn byte_searches_match_str() {
        for text in [
            "",
            ":",
            "://",
            "a://b",
            "a:b://c",
            "x:/y://z",
            "a:",
            "é://ü",
            "https://h",
            "::://",
        ] {
            assert_eq!(split_scheme(text), text.split_once("://"), "{text:?}");
        }
        for name in [
            "",
            "A",
            "DB_PASSWORD",
            "PUBLIC",
            "XPUBLICX",
            "_KEY",
            "KEY",
            "SECRETSECRET",
        ] {
            for word in ["", "A", "_KEY", "PUBLIC", "SECRET", "DB_PASSWORD", "KEYS"] {
                let n = Name::new(name.as_bytes());
                assert_eq!(n.contains(word), name.contains(word), "{name} {word}");
                assert_eq!(n.ends_with(word), name.ends_with(word), "{name} {word}");
            }
        }
    }

    #[test]
    fn url_passwords() {
        assert_eq!(url_password("postgres://u:pw@db:5432/x"), Some("pw"));
        assert_eq!(url_password("redis://:pw@cache:6379/0"), Some("pw"));
        assert_eq!(url_password("https://key@o1.ingest.sentry.io/1"), None);
        assert_eq!(url_password("postgres://u:@db/x"), None);
        assert_eq!(url_password("not a url"), None);
        assert_eq!(url_password("https://h/p?a=b:c@d"), None);
        assert_eq!(url_password("x://u:p@h#f"), Some("p"));
        assert_eq!(url_password("x://u:p@h?q"), Some("p"));
        assert_eq!(url_password("x://u:p@"), Some("p"));
        assert_eq!(url_password("x://u:p@h/@"), Some("p"));
    }

    #[test]
    fn placeholders() {
        for v in [
            "",
            "  ",
            "<your-secret-key>",
            "{SECRET}",
            "${DB_PASSWORD}",
            "{{ vault }}",
            "%(pw)s",
            "changeme",
            "CHANGE-ME-please",
            "my-test-key-2",
            "xxx",
            "XXXX-XXXX",
            "foobared",
            "django-insecure-abc",
            "aaaaaaaa",
            "abababab",
            "abcdef",
            "0123456789",
            "987654",
            "ZqkLp-9999999-tq",
            "SECRET_KEY",
        ] {
            assert!(placeholder(v, "SECRET_KEY").is_some(), "{v:?}");
        }
        for v in [
            "Zq8rT2mW9xK4vL7pB3nH6jF1dS5gA0cE",
            "p4ss-w0rd-is-fine? no: 7hQ2m",
            "a<b3>c",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "Xk9#mQ2$vL7",
            "abc",
        ] {
            assert_eq!(placeholder(v, "SECRET_KEY"), None, "{v:?}");
        }
    }

    #[test]
    fn django_keys() {
        let good = "k3$Zq8rT2mW9xK4vL7pB3nH6jF1dS5gA0cE!uY2tR5eW8qO1iP";
        assert_eq!(good.len(), 50);
        assert_eq!(key_format(good, Kind::DjangoSecretKey, "SECRET_KEY"), None);
        assert_eq!(
            key_format(&good[1..], Kind::DjangoSecretKey, "SECRET_KEY").unwrap(),
            "SECRET_KEY is 49 characters long; a django-secret-key needs at least 50"
        );
        let few = "abcd".repeat(13);
        assert!(
            key_format(&few, Kind::DjangoSecretKey, "SECRET_KEY")
                .unwrap()
                .contains("only 4 distinct")
        );
        let five = "abcde".repeat(10);
        assert_eq!(key_format(&five, Kind::DjangoSecretKey, "SECRET_KEY"), None);
        let insecure = format!("django-insecure-{good}");
        assert!(
            key_format(&insecure, Kind::DjangoSecretKey, "SECRET_KEY")
                .unwrap()
                .contains("django-insecure-")
        );
        let fallbacks = format!("{good},short");
        assert_eq!(
            key_format(&fallbacks, Kind::DjangoSecretKey, "SECRET_KEY_FALLBACKS").unwrap(),
            "SECRET_KEY_FALLBACKS (key 2 of 2) is 5 characters long; a django-secret-key needs at least 50"
        );
    }

    #[test]
    fn fernet_keys() {
        // Fernet.generate_key() output: 32 random bytes.
        let key = "0nAFxLt6y4t9Q2PZ3bXbNV0f5rqgR1zX8yKq3VhS-aM=";
        assert_eq!(key.len(), 44);
        assert_eq!(key_format(key, Kind::Fernet, "FERNET_KEY"), None);
        assert_eq!(
            key_format(&format!("{key}, {key}"), Kind::Fernet, "FERNET_KEYS"),
            None
        );
        // Standard alphabet (`+`), no padding, wrong length, non-canonical last character.
        let plus = key.replace('-', "+");
        assert!(
            key_format(&plus, Kind::Fernet, "K")
                .unwrap()
                .contains("not URL-safe base64")
        );
        assert!(
            key_format(key.trim_end_matches('='), Kind::Fernet, "K")
                .unwrap()
                .contains("not URL-safe")
        );
        let short = "dGhpcyBpcyBub3QgMzIgYnl0ZXM=";
        assert_eq!(
            key_format(short, Kind::Fernet, "K").unwrap(),
            "K decodes to 20 bytes; a Fernet key is exactly 32 bytes of URL-safe base64 (44 characters)"
        );
        let noncanonical = key.replace("aM=", "aN=");
        assert!(key_format(&noncanonical, Kind::Fernet, "K").is_some());
        let multi = format!("{key},{short}");
        assert!(
            key_format(&multi, Kind::Fernet, "K")
                .unwrap()
                .starts_with("K (key 2 of 2 in the MultiFernet list)")
        );
    }

    #[test]
    fn jwt_keys() {
        let hex64 = "ab".repeat(32);
        assert_eq!(key_format(&hex64, Kind::Jwt(256), "JWT_SECRET"), None);
        assert!(
            key_format(&hex64[2..], Kind::Jwt(256), "JWT_SECRET")
                .unwrap()
                .contains("31 bytes")
        );
        assert!(
            key_format(&hex64, Kind::Jwt(384), "JWT_SECRET")
                .unwrap()
                .contains("HS384 needs at least 48")
        );
        // 43 base64 characters = 32 bytes; 42 = 31.
        let b64 = "Zq8rT2mW9xK4vL7pB3nH6jF1dS5gA0cEuY2tR5eW8qO";
        assert_eq!(key_format(b64, Kind::Jwt(256), "K"), None);
        assert!(
            key_format(&b64[1..], Kind::Jwt(256), "K")
                .unwrap()
                .contains("31 bytes of key material (read as base64)")
        );
        let raw = "not base64 but long enough: 32 b";
        assert_eq!(key_bytes(raw), (32, "raw"));
        assert_eq!(key_format(raw, Kind::Jwt(256), "K"), None);
        assert_eq!(key_format(&"x!".repeat(32), Kind::Jwt(512), "K"), None);
    }

    #[test]
    fn password_strength_boundaries() {
        let s = |v: &str| strength(v, "DB_PASSWORD", 16, 32);
        assert_eq!(
            s("Xk9#mQ2$vL7pB3n").unwrap(),
            (
                true,
                "DB_PASSWORD is 15 characters long; passwords need at least 16".into()
            )
        );
        assert!(!s("Xk9#mQ2$vL7pB3nH").unwrap().0);
        assert_eq!(
            s("Xk9#mQ2$vL7pB3nH6jF1dS5gA0cE!uY").unwrap().1,
            "DB_PASSWORD is 31 characters long; 32 or more is recommended"
        );
        assert_eq!(s("Xk9#mQ2$vL7pB3nH6jF1dS5gA0cE!uY2"), None);
        let low = "abababababababababababababababcd";
        assert!(s(low).unwrap().1.contains("does not look random"));
    }

    #[test]
    fn random_values_pass_the_entropy_floor() {
        // A deterministic pseudo-random generator: 2000 values per class and length.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let alphabets = [
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            "0123456789abcdef",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&*+-.:;=?@^_~",
        ];
        for alphabet in alphabets {
            let chars: Vec<char> = alphabet.chars().collect();
            for len in [32, 40, 44, 50, 64] {
                for _ in 0..2000 {
                    let v: String = (0..len).map(|_| chars[next(chars.len())]).collect();
                    let (floor, _) = entropy_floor(&v);
                    assert!(entropy(&v) >= floor, "{len} {alphabet}: {v}");
                }
            }
        }
    }

    #[test]
    fn entropy_values() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
        assert_eq!(entropy_floor(&"a".repeat(64)), (2.8, "hex"));
        assert_eq!(entropy_floor(&"z".repeat(64)), (4.5, "base64"));
        assert_eq!(entropy_floor(&"!".repeat(64)), (3.5, "generic"));
    }
}
