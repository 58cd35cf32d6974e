//! The protobuf codec of every generated service and client: tonic-prost's, except for what a
//! request that cannot be decoded gets. gRPC's convention is INTERNAL for bytes that are not a
//! valid message, and that stays; but a well-formed request nested deeper than the decoder's
//! recursion limit (a `google.protobuf.Struct` context 100 levels deep) is the caller's input
//! going past a limit, so it gets INVALID_ARGUMENT saying so. Both messages are short (the
//! decoder's own error lists every level of the path).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Nesting the protobuf decoder accepts (prost's recursion limit).
pub const MAX_MESSAGE_NESTING: u32 = 100;

/// A [`Codec`] for prost messages `T` (sent) and `U` (received).
#[derive(Debug)]
pub struct TesseraCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for TesseraCodec<T, U> {
    fn default() -> Self {
        TesseraCodec(PhantomData)
    }
}

impl<T, U> Codec for TesseraCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = TesseraDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        TesseraDecoder(PhantomData)
    }
}

/// Decodes `U`, classifying failures (see the module docs).
#[derive(Debug)]
pub struct TesseraDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for TesseraDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(decode_error)
    }
}

fn decode_error(e: prost::DecodeError) -> Status {
    let text = e.to_string();
    if text.contains("recursion limit reached") {
        Status::invalid_argument(format!(
            "the message is nested more than {MAX_MESSAGE_NESTING} levels deep, the decoder's \
             limit (a caveat context or metadata Struct inside Structs?)"
        ))
    } else {
        // The decoder's text ends with the problem; its path can list a hundred fields.
        let reason = text.rsplit(": ").next().unwrap_or_default();
        Status::internal(format!(
            "the message is not a valid protobuf encoding of the request: {}",
            crate::service::cap_message(reason.to_string(), 200)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_are_short_and_classified() {
        // A real decoding failure of a deeply nested Struct, from prost itself.
        let mut v = prost_types::Value::default();
        for _ in 0..200 {
            let mut s = prost_types::Struct::default();
            s.fields.insert("x".into(), v);
            v = prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(s)),
            };
        }
        let bytes = v.encode_to_vec();
        let e = prost_types::Value::decode(bytes.as_slice()).expect_err("too deep");
        let s = decode_error(e);
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{}", s.message());
        assert!(
            s.message().contains("nested more than 100 levels"),
            "{}",
            s.message()
        );
        let garbage = prost_types::Struct::decode(&[0xffu8; 8][..]).expect_err("garbage");
        let s = decode_error(garbage);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(s.message().len() < 400, "{}", s.message());
    }
}
