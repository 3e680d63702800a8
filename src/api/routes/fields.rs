//! What a request's fields must be, checked as the OpenAPI document states it: the lengths,
//! characters and ranges serde's types do not make true by themselves, and whole numbers as
//! JSON Schema counts them. A constraint in a handler's schema has its check here (or in the
//! type it is parsed into), so that what the document calls valid is taken and what it calls
//! invalid is refused with a 400.

use axum::http::StatusCode;

use super::Result;
use crate::api::ApiError;

/// Refuses `value` unless it has at most `max` characters and no control character: what a
/// field with `maxLength` and the pattern `^[^\x00-\x1f\x7f-\x9f]*$` promises (Unicode's
/// Cc, U+0000 to U+001F and U+007F to U+009F, as `char::is_control` says).
pub fn text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} may not hold control characters (line breaks, tabs, escapes)"
        )));
    }
    let n = value.chars().count();
    if n > max {
        return Err(invalid(format!(
            "{field} is {n} characters long; at most {max}"
        )));
    }
    Ok(())
}

/// Refuses `value` unless it lies in `range` (a schema's `minimum` and `maximum`).
pub fn within<T>(field: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<T>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{field} must be between {} and {}, not {value}",
            range.start(),
            range.end()
        )))
    }
}

/// The schema of a command line (`min` arguments at least, `null` allowed or not): arguments of
/// any text but NUL, which no program can be given (an argument is a C string; the service
/// refuses one with a 400).
fn command(min: usize, nullable: bool, description: &str) -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let kind = if nullable {
        SchemaType::from_iter([Type::Array, Type::Null])
    } else {
        SchemaType::Type(Type::Array)
    };
    ArrayBuilder::new()
        .schema_type(kind)
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[^\x00]*$")),
        )
        .min_items((min > 0).then_some(min))
        .description(Some(description))
        .build()
}

/// A required command line of at least one argument.
pub fn argv() -> utoipa::openapi::Array {
    command(1, false, "The command and its arguments (no NUL in any).")
}

/// An optional command line (`null` or empty: the profile's command).
pub fn argv_or_none() -> utoipa::openapi::Array {
    command(
        0,
        true,
        "The command and its arguments (no NUL in any); empty or absent: the profile's.",
    )
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Whole numbers as JSON Schema counts them: `2.0` is the integer 2 (an `integer` is any
/// number without a fractional part), which JSON libraries that hold every number as a
/// double send. serde's integer types refuse it; these take it, and refuse fractions,
/// negatives and what does not fit.
pub mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    fn of<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
        n: serde_json::Number,
    ) -> Result<T, D::Error> {
        let whole = match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => Some(u),
            // Beyond 2^53 a double is whole whatever was meant; what does not fit is refused
            // below.
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                Some(f as u64)
            }
            _ => None,
        };
        let Some(u) = whole else {
            return Err(D::Error::custom(format!(
                "{n} is not a whole number of at least 0"
            )));
        };
        T::try_from(u).map_err(|_| D::Error::custom(format!("{n} is too large")))
    }

    /// A required whole number.
    pub fn required<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
        of::<D, T>(serde_json::Number::deserialize(d)?)
    }

    /// An optional whole number (absent or `null`: none); use with `#[serde(default)]`.
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(of::<D, T>)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Size {
        #[serde(deserialize_with = "whole::required")]
        cols: u16,
        #[serde(default, deserialize_with = "whole::optional")]
        rows: Option<u16>,
    }

    fn size(json: &str) -> std::result::Result<Size, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_number_written_as_a_double_is_the_integer_json_schema_says_it_is() {
        assert_eq!(
            size(r#"{"cols": 80.0, "rows": 24}"#),
            Ok(Size {
                cols: 80,
                rows: Some(24)
            })
        );
        assert_eq!(
            size(r#"{"cols": 1, "rows": null}"#),
            Ok(Size {
                cols: 1,
                rows: None
            })
        );
        assert_eq!(size(r#"{"cols": 1}"#).map(|s| s.rows), Ok(None));
    }

    #[test]
    fn fractions_negatives_and_numbers_too_large_are_refused() {
        for bad in [
            r#"{"cols": 1.5}"#,
            r#"{"cols": -1}"#,
            r#"{"cols": 65536}"#,
            r#"{"cols": 1e300}"#,
            r#"{"cols": "1"}"#,
        ] {
            assert!(size(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn text_with_a_control_character_or_over_its_length_is_refused() {
        assert!(text("name", "ünïcode ok", 10).is_ok());
        assert!(text("name", "abc\u{7}", 10).is_err());
        assert!(text("name", "abc\u{85}", 10).is_err());
        assert!(text("name", "elevenchars", 10).is_err());
        assert!(
            text("name", "ééééééééé", 10).is_ok(),
            "characters, not bytes"
        );
    }
}
