//! AWS Signature Version 4 for S3 requests, signed in the `Authorization` header: a pure
//! function of the request, the credentials and the time, tested against the example in
//! Amazon's S3 documentation. Every header sent is signed (S3 refuses an unsigned `x-amz-*`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The hash S3 expects in `x-amz-content-sha256` for a body.
pub fn payload_hash(body: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(body))
}

/// Percent-encodes as SigV4 wants: unreserved characters kept, `/` kept in paths.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// What is signed: the method, the path (already encoded), the query pairs (raw), and the
/// headers (names lower case; `host`, `x-amz-date` and `x-amz-content-sha256` among them).
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// The `Authorization` header's value. `amz_date` is `YYYYMMDDTHHMMSSZ`.
pub fn authorization(
    req: &Request,
    access_key: &str,
    secret: &str,
    region: &str,
    amz_date: &str,
) -> String {
    let mut query: Vec<(String, String)> = req
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        // SigV4's "Trimall": a value's runs of white space become one space, not only its
        // ends trimmed (botocore: `' '.join(value.split())`). No header cordon sends has one
        // today; a value with two spaces would otherwise be signed as the server never
        // computes it, and refused.
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method, req.path, query, canonical_headers, signed, req.payload_hash
    );
    let day = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        crate::secrets::hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = zeroize::Zeroizing::new(format!("AWS4{secret}"));
    let k = hmac(key.as_bytes(), day.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, b"s3");
    let k = hmac(&k, b"aws4_request");
    let signature = crate::secrets::hex(&hmac(&k, to_sign.as_bytes()));
    format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}")
}

/// `YYYYMMDDTHHMMSSZ` for a time.
pub fn amz_date(t: std::time::SystemTime) -> String {
    let s = crate::audit::rfc3339(t);
    let digits: String = s
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{digits}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_example_in_amazons_s3_documentation() {
        // "Example: GET Object" of Amazon S3's "Signature Calculations for the Authorization
        // Header": the first ten bytes of examplebucket/test.txt.
        let headers = [
            (
                "host".to_string(),
                "examplebucket.s3.amazonaws.com".to_string(),
            ),
            ("range".to_string(), "bytes=0-9".to_string()),
            ("x-amz-content-sha256".to_string(), payload_hash(b"")),
            ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
        ];
        let auth = authorization(
            &Request {
                method: "GET",
                path: "/test.txt",
                query: &[],
                headers: &headers,
                payload_hash: &payload_hash(b""),
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "20130524T000000Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// One request as `Bucket::request` signs it, with the vectors' credentials and time.
    fn sign(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let hash = payload_hash(body);
        let mut headers = vec![
            ("host".to_string(), "127.0.0.1:9000".to_string()),
            ("x-amz-content-sha256".to_string(), hash.clone()),
            ("x-amz-date".to_string(), "20261202T043000Z".to_string()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let auth = authorization(
            &Request {
                method,
                path,
                query: &query,
                headers: &headers,
                payload_hash: &hash,
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "eu-west-3",
            "20261202T043000Z",
        );
        auth.rsplit_once("Signature=").unwrap().1.to_string()
    }

    /// The requests cordon sends (a listing with a continuation token, a listing of
    /// versions, a ranged GET, a put under Object Lock and legal hold, a legal hold set, a
    /// version's delete), signed by cordon and by botocore. The signatures below were made
    /// once with botocore 1.x of install.sh's venv (`~/.cache/cordon/venv`): its
    /// `S3SigV4Auth` (what boto3 signs S3 requests with; its `SigV4Auth`, what moto checks
    /// with, gave the same) on an `AWSRequest` with the same headers, its
    /// `context['timestamp']` set to the x-amz-date, and `canonical_request`,
    /// `string_to_sign`, `signature` called in turn, the way moto's
    /// `iam/access_control.py` recomputes one. Region eu-west-3, Amazon's example key.
    #[test]
    fn signatures_match_botocores_for_the_requests_cordon_sends() {
        let empty: &[(&str, &str)] = &[];
        assert_eq!(
            sign(
                "GET",
                "/cordon-recs",
                &[
                    ("list-type", "2"),
                    ("prefix", "site/recordings/ab12/part-"),
                    ("continuation-token", "1+Zx/=="),
                ],
                empty,
                b"",
            ),
            "b10aa5763a526ce4b22a6e4ed0b4c1f6fb657efd6c68c792406c084abdd5309e"
        );
        assert_eq!(
            sign(
                "GET",
                "/cordon-recs",
                &[("prefix", "site/recordings/ab12/"), ("versions", "")],
                empty,
                b"",
            ),
            "ce44b99967b6084b6bcbee2a230620828834090adcdc6294919bda7188693269"
        );
        assert_eq!(
            sign(
                "GET",
                "/cordon-recs/site/recordings/ab12/part-000003",
                &[],
                &[("range", "bytes=1048576-2097151")],
                b"",
            ),
            "b949dd28bd7654c20448497c55a5083575fa9d8270d4da6b85ff27b553e13050"
        );
        assert_eq!(
            sign(
                "PUT",
                "/cordon-recs/site/recordings/ab12/part-000001",
                &[],
                &[
                    (
                        "x-amz-checksum-sha256",
                        "O+LVnB2YABTx1Qd/xtdl/kIGlPJvciKhCh7twphWouQ="
                    ),
                    ("x-amz-sdk-checksum-algorithm", "SHA256"),
                    ("x-amz-object-lock-mode", "COMPLIANCE"),
                    (
                        "x-amz-object-lock-retain-until-date",
                        "2027-01-01T00:00:00Z"
                    ),
                    ("x-amz-object-lock-legal-hold", "ON"),
                ],
                b"part bytes\n",
            ),
            "d598d48acd89c9585c35b3a21f8e5af718acaedb7c78fb5c7bcf0a457966c416"
        );
        assert_eq!(
            sign(
                "PUT",
                "/cordon-recs/site/recordings/ab12/index.json",
                &[("legal-hold", "")],
                &[
                    (
                        "x-amz-checksum-sha256",
                        "lrc8lajTPmZKshcOCVAltH69VZeLtxzr1qUeOUv5ZyI="
                    ),
                    ("x-amz-sdk-checksum-algorithm", "SHA256"),
                ],
                b"<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>ON</Status></LegalHold>",
            ),
            "c65b7888591f99728023a3cccdfe8cedd1a5f03ad9fc6993c64a1506734b499a"
        );
        assert_eq!(
            sign(
                "DELETE",
                "/cordon-recs/site/recordings/ab12/part-000001",
                &[("versionId", "3/b~x_y.z")],
                empty,
                b"",
            ),
            "a0432db20cf0861dddcb779d93a50579721f6ab3ee373ec324387ef5b83623e8"
        );
    }

    /// Made as the vectors above: botocore trims a header value and folds its runs of
    /// white space (spaces, a tab) to one space before signing.
    #[test]
    fn header_values_are_trimmed_and_their_runs_of_white_space_folded_as_botocore_does() {
        assert_eq!(
            sign(
                "GET",
                "/cordon-recs/a",
                &[],
                &[("range", "  bytes=0-9   ")],
                b""
            ),
            "2aa4fce30258d4affcb34a4436b15730522bb902e03cd204e6b9f8063b2a5d12"
        );
        assert_eq!(
            sign(
                "PUT",
                "/cordon-recs/a",
                &[],
                &[("x-amz-meta-note", " two  spaces\tand tab ")],
                b"x"
            ),
            "1b9de91619136ed1bb24338f9eb56d6077dc129a429f6c974b610c598942c91e"
        );
    }

    #[test]
    fn dates_are_written_the_way_sigv4_wants() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        assert_eq!(amz_date(t), "20130524T000000Z");
    }
}
