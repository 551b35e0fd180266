//! The bearer token: read from a file once, compared in constant time, never logged.

use std::{fmt, path::Path, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use super::{AdminError, routes::error_response};

/// The token every request must carry as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub(super) struct Token(Arc<[u8]>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The file's content without surrounding whitespace; an empty one is an error.
    pub(super) fn read(path: &Path) -> Result<Self, AdminError> {
        let text = std::fs::read(path).map_err(|e| AdminError::TokenFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let token = text.trim_ascii();
        if token.is_empty() {
            return Err(AdminError::TokenFile {
                path: path.to_owned(),
                message: "the file is empty; put the bearer token in it".into(),
            });
        }
        if token.iter().any(|b| !b.is_ascii_graphic()) {
            return Err(AdminError::TokenFile {
                path: path.to_owned(),
                message: "the token must be printable ASCII without spaces (it travels in an HTTP header)".into(),
            });
        }
        Ok(Token(token.into()))
    }

    #[cfg(test)]
    pub(super) fn new(token: &str) -> Self {
        Token(token.as_bytes().into())
    }

    /// Whether `header` is `Bearer <this token>`; the comparison takes the same time
    /// whichever byte differs.
    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header
            .map(HeaderValue::as_bytes)
            .and_then(|h| h.strip_prefix(b"Bearer "))
        else {
            return false;
        };
        given.trim_ascii().ct_eq(&self.0).into()
    }
}

/// Middleware: 401 unless the request carries the token.
pub(super) async fn require(State(token): State<Token>, request: Request, next: Next) -> Response {
    if token.admits(request.headers().get(header::AUTHORIZATION)) {
        return next.run(request).await;
    }
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (send Authorization: Bearer <the token in admin.token-file>)",
        None,
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"polaris-plugin\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_admitted() {
        let t = Token::new("s3cret");
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(t.admits(Some(&h("Bearer s3cret"))));
        assert!(!t.admits(Some(&h("Bearer s3cres"))));
        assert!(!t.admits(Some(&h("Bearer s3cret2"))));
        assert!(!t.admits(Some(&h("Bearer "))));
        assert!(!t.admits(Some(&h("Basic s3cret"))));
        assert!(!t.admits(None));
        assert_eq!(format!("{t:?}"), "Token(..)");
    }

    #[test]
    fn token_files_are_trimmed_and_empty_ones_refused() {
        let dir = std::env::temp_dir().join(format!("pp-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "abc\n").unwrap();
        assert!(
            Token::read(&file)
                .unwrap()
                .admits(Some(&HeaderValue::from_static("Bearer abc")))
        );
        std::fs::write(&file, " \n").unwrap();
        let e = Token::read(&file).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("token"), "{e}");
        let e = Token::read(&dir.join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
