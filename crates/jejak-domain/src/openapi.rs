//! OpenAPI schemas (feature `openapi`) for the wire types whose JSON form is written by
//! hand rather than derived: ids as 32 hex digits, codes, patron keys and the closed
//! vocabularies. The structs of the batch derive theirs next to their definitions, so
//! the district server's OpenAPI document comes from the same code that reads the wire.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::identity::{LibraryCode, PcCode};
use crate::session::PatronKey;
use crate::vocab::{
    AgeGroup, EndReason, Gender, PcEventKind, Purpose, TimeQuality, UserKind, Zone,
};
use crate::wire::HexId;

fn string_schema(
    description: &str,
    pattern: Option<&str>,
    max_length: Option<usize>,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(pattern)
        .max_length(max_length)
        .into()
}

macro_rules! string_type_schema {
    ($ty:ty, $name:literal, $description:literal, $pattern:expr, $max:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string_schema($description, $pattern, $max)
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

string_type_schema!(
    HexId,
    "HexId",
    "A UUID written as 32 lowercase hex digits (the hyphenated form is accepted too).",
    Some("^[0-9a-fA-F-]{32,36}$"),
    Some(36)
);
string_type_schema!(
    LibraryCode,
    "LibraryCode",
    "A library's code (NPP or district code): 1-32 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit.",
    Some("^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"),
    Some(32)
);
string_type_schema!(
    PcCode,
    "PcCode",
    "A PC's code inside its library, such as pc-01: 1-32 ASCII letters, digits, '.', '_' or '-'.",
    Some("^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"),
    Some(32)
);
string_type_schema!(
    PatronKey,
    "PatronKey",
    "HMAC-SHA256 of a member number under the library's secret, as 64 lowercase hex characters; never the member number itself.",
    Some("^[0-9a-f]{64}$"),
    Some(64)
);

macro_rules! vocabulary_schema {
    ($($ty:ident: $description:literal;)+) => {
        $(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::String))
                        .description(Some($description))
                        .enum_values(Some($ty::codes()))
                        .into()
                }
            }

            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    Cow::Borrowed(stringify!($ty))
                }
            }
        )+
    };
}

vocabulary_schema! {
    Purpose: "Why the patron used the PC (tujuan penggunaan).";
    Gender: "Jenis kelamin: L, P, or X (not stated).";
    AgeGroup: "Kelompok umur.";
    UserKind: "Kriteria pengguna; staff sessions are excluded from public counts.";
    EndReason: "How a session ended (alasan berakhir).";
    PcEventKind: "What a pc event records.";
    TimeQuality: "How far a record's wall times can be trusted.";
    Zone: "One of Indonesia's three time zones.";
}
