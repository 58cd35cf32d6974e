//! Static types of the checker. `Dyn` is CEL's dynamic type (the schema's `any`): it is
//! accepted wherever a value is, and checked at evaluation instead.

use std::fmt;

use super::CaveatType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ty {
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    IpAddress,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Dyn,
    /// The type of an expression that already produced a diagnostic; compatible with
    /// everything so one mistake is reported once.
    Error,
}

impl Ty {
    pub(crate) fn from_caveat_type(t: &CaveatType) -> Ty {
        match t {
            CaveatType::Int => Ty::Int,
            CaveatType::Uint => Ty::Uint,
            CaveatType::Double => Ty::Double,
            CaveatType::Bool => Ty::Bool,
            CaveatType::String => Ty::String,
            CaveatType::Bytes => Ty::Bytes,
            CaveatType::Duration => Ty::Duration,
            CaveatType::Timestamp => Ty::Timestamp,
            CaveatType::IpAddress => Ty::IpAddress,
            CaveatType::List(inner) => Ty::List(Box::new(Ty::from_caveat_type(inner))),
            CaveatType::Map(inner) => {
                Ty::Map(Box::new(Ty::String), Box::new(Ty::from_caveat_type(inner)))
            }
            CaveatType::Any => Ty::Dyn,
        }
    }

    /// Dynamic or already erroneous: anything goes.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self, Ty::Dyn | Ty::Error)
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether a value of this type may be `expected` (exact, or either side dynamic).
    pub(crate) fn fits(&self, expected: &Ty) -> bool {
        if self.is_open() || expected.is_open() {
            return true;
        }
        match (self, expected) {
            (Ty::List(a), Ty::List(b)) => a.fits(b),
            (Ty::Map(ak, av), Ty::Map(bk, bv)) => ak.fits(bk) && av.fits(bv),
            _ => self == expected,
        }
    }

    /// Whether `==` between the two types makes sense: same type, numbers of any kind,
    /// `null` against anything, or a dynamic side.
    pub(crate) fn comparable_eq(&self, other: &Ty) -> bool {
        if self.is_open() || other.is_open() {
            return true;
        }
        if self.is_numeric() && other.is_numeric() {
            return true;
        }
        if matches!(self, Ty::Null) || matches!(other, Ty::Null) {
            return true;
        }
        match (self, other) {
            (Ty::List(a), Ty::List(b)) => a.comparable_eq(b),
            (Ty::Map(ak, av), Ty::Map(bk, bv)) => ak.comparable_eq(bk) && av.comparable_eq(bv),
            _ => self == other,
        }
    }

    /// Whether `<` between the two types makes sense.
    pub(crate) fn orderable(&self, other: &Ty) -> bool {
        let ordered = |t: &Ty| {
            matches!(
                t,
                Ty::Bool
                    | Ty::Int
                    | Ty::Uint
                    | Ty::Double
                    | Ty::String
                    | Ty::Bytes
                    | Ty::Duration
                    | Ty::Timestamp
            )
        };
        match (self.is_open(), other.is_open()) {
            (true, true) => true,
            (true, false) => ordered(other),
            (false, true) => ordered(self),
            (false, false) => {
                ordered(self) && (self == other || (self.is_numeric() && other.is_numeric()))
            }
        }
    }

    /// The common type of list elements, map entries or `?:` branches; `Dyn` when they differ.
    pub(crate) fn join(&self, other: &Ty) -> Ty {
        match (self, other) {
            (Ty::Error, t) | (t, Ty::Error) => t.clone(),
            (Ty::List(a), Ty::List(b)) => Ty::List(Box::new(a.join(b))),
            (Ty::Map(ak, av), Ty::Map(bk, bv)) => {
                Ty::Map(Box::new(ak.join(bk)), Box::new(av.join(bv)))
            }
            (a, b) if a == b => a.clone(),
            _ => Ty::Dyn,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Duration => f.write_str("duration"),
            Ty::Timestamp => f.write_str("timestamp"),
            Ty::IpAddress => f.write_str("ipaddress"),
            Ty::List(t) => write!(f, "list<{t}>"),
            Ty::Map(k, v) => write!(f, "map<{k}, {v}>"),
            Ty::Dyn => f.write_str("any"),
            Ty::Error => f.write_str("<error>"),
        }
    }
}
