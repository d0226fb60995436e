//! Version 4 of the protocol (protocol.md section 16): `AUTH`, its `AUTHED` reply, and
//! the error codes and `HELLO` feature bit that go with authentication and timeouts.

use bytes::BufMut;

use super::{MAX_CONTROL_FRAME, Opcode, ProtocolError, Reader, Request, Response, Status};

/// `HELLO` feature bit: this server requires `AUTH` before anything but `HELLO`,
/// `PING` and `QUIT` (protocol.md 16.3).
pub const FEATURE_AUTH_REQUIRED: u32 = 0x20;

/// Longest token an `AUTH` frame can carry: a control frame less its opcode and flags.
pub const MAX_TOKEN: usize = MAX_CONTROL_FRAME as usize - 2;

/// Opcodes a connection may send before it has authenticated (protocol.md 16.1).
pub fn allowed_before_auth(opcode: u8) -> bool {
    [Opcode::Hello, Opcode::Ping, Opcode::Quit, Opcode::Auth]
        .iter()
        .any(|o| *o as u8 == opcode)
}

/// Whether a read-only token may carry out this request (protocol.md 16.4): those that
/// only look, and the connection-level ones.
pub fn allowed_read_only(opcode: Opcode) -> bool {
    matches!(
        opcode,
        Opcode::Hello
            | Opcode::Ping
            | Opcode::Quit
            | Opcode::Auth
            | Opcode::Stats
            | Opcode::Peek
            | Opcode::Subscribe
            | Opcode::Unsubscribe
            | Opcode::Schedules
    )
}

/// Decodes an `AUTH` body: the token is the whole of it (an empty one is decoded, and
/// refused by the server as a wrong token).
pub(super) fn decode_auth<'a>(r: &mut Reader<'a>) -> Request<'a> {
    Request::Auth { token: r.rest() }
}

/// Encodes `AUTH`; `None` for the other requests.
pub(super) fn encode_request(
    request: &Request<'_>,
    dst: &mut impl BufMut,
) -> Option<Result<(), ProtocolError>> {
    let Request::Auth { token } = request else {
        return None;
    };
    if token.len() > MAX_TOKEN {
        return Some(Err(ProtocolError::FrameTooLarge {
            len: (token.len() + 2) as u32,
            max: MAX_CONTROL_FRAME,
        }));
    }
    dst.put_u32((2 + token.len()) as u32);
    dst.put_u8(Opcode::Auth as u8);
    dst.put_u8(0);
    dst.put_slice(token);
    Some(Ok(()))
}

/// Appends an `AUTHED` reply.
pub fn encode_authed(dst: &mut impl BufMut, read_only: bool) {
    dst.put_u32(2);
    dst.put_u8(Status::Authed as u8);
    dst.put_u8(u8::from(read_only));
}

/// Decodes an `AUTHED` body. Any access other than 0 is taken as restricted, so that a
/// later, finer access level is never mistaken for read-write.
pub(super) fn decode_authed<'a>(r: &mut Reader<'a>) -> Result<Response<'a>, ProtocolError> {
    Ok(Response::Authed {
        read_only: r.u8("access")? != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Decoded, decode_request, decode_response};
    use super::*;

    /// protocol.md 16.9: AUTH with "0123456789abcdef" and AUTHED read-write.
    #[test]
    fn examples_of_the_spec() {
        let mut frame = Vec::new();
        Request::Auth {
            token: b"0123456789abcdef",
        }
        .encode(&mut frame)
        .unwrap();
        let mut expected = vec![0, 0, 0, 0x12, 0x40, 0];
        expected.extend_from_slice(b"0123456789abcdef");
        assert_eq!(frame, expected);
        let (decoded, used) = decode_request(&frame, 1024).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(
            decoded,
            Decoded::Request(Request::Auth {
                token: b"0123456789abcdef"
            })
        );

        let mut reply = Vec::new();
        encode_authed(&mut reply, false);
        assert_eq!(reply, [0, 0, 0, 2, 0x04, 0]);
        let (response, _) = decode_response(&reply, 64).unwrap().unwrap();
        assert_eq!(response, Response::Authed { read_only: false });
        reply.clear();
        encode_authed(&mut reply, true);
        let (response, _) = decode_response(&reply, 64).unwrap().unwrap();
        assert_eq!(response, Response::Authed { read_only: true });
        // A future access level is restricted, never read-write.
        let (response, _) = decode_response(&[0, 0, 0, 2, 0x04, 7], 64)
            .unwrap()
            .unwrap();
        assert_eq!(response, Response::Authed { read_only: true });
    }

    /// The token runs to the end of the frame: empty decodes (the server refuses it),
    /// the longest fits a control frame, one more byte is FRAME_TOO_LARGE both ways.
    #[test]
    fn token_lengths() {
        let empty = [0, 0, 0, 2, 0x40, 0];
        let (decoded, _) = decode_request(&empty, 0).unwrap().unwrap();
        assert_eq!(decoded, Decoded::Request(Request::Auth { token: b"" }));
        // It encodes too, so that every decoded request re-encodes to its bytes.
        let mut encoded = Vec::new();
        Request::Auth { token: b"" }.encode(&mut encoded).unwrap();
        assert_eq!(encoded, empty);

        let long = vec![b'x'; MAX_TOKEN];
        let mut frame = Vec::new();
        Request::Auth { token: &long }.encode(&mut frame).unwrap();
        assert!(decode_request(&frame, 0).unwrap().is_some());
        let longer = vec![b'x'; MAX_TOKEN + 1];
        assert!(matches!(
            Request::Auth { token: &longer }.encode(&mut Vec::new()),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        let mut head = vec![0, 0, 4, 1, 0x40, 0];
        head.extend_from_slice(&longer);
        assert!(matches!(
            decode_request(&head, 0),
            Err(ProtocolError::FrameTooLarge { .. })
        ));
        // Flags are reserved.
        assert!(matches!(
            decode_request(&[0, 0, 0, 3, 0x40, 1, b'x'], 0),
            Err(ProtocolError::BadFlags(1))
        ));
    }

    /// The first finding of the `decode_request` fuzz target (FUZZING.md): an `AUTH`
    /// with an empty token decoded but did not re-encode. Its frames, through the
    /// same checks the target makes.
    #[test]
    fn fuzz_regression_empty_auth_token() {
        let crash = [
            0x60, 0, 0, 0, 0, 0x02, 0x40, 0, 0x7d, 0x7d, 0x7d, 0, 0x16, 0, 0x7f, 0x7d,
        ];
        for start in 0..crash.len() {
            super::super::tests::check_decoders(&crash[start..], 1024, 1 << 20);
        }
        super::super::tests::check_decoders(&[0, 0, 0, 2, 0x40, 0], 0, 1024);
    }

    /// Every frame of protocol.md 16.9 is what the codec writes.
    #[test]
    fn every_frame_in_section_16_is_what_the_codec_writes() {
        let checked = super::super::tests::check_documented_examples("### 16.");
        assert_eq!(checked, 6);
    }

    #[test]
    fn what_may_come_before_auth_and_with_read_only() {
        for op in [0x01, 0x02, 0x03, 0x40] {
            assert!(allowed_before_auth(op), "{op:#x}");
        }
        for op in [0x10, 0x11, 0x12, 0x13, 0x17, 0x20, 0x32, 0x33, 0x41, 0xff] {
            assert!(!allowed_before_auth(op), "{op:#x}");
        }
        assert!(allowed_read_only(Opcode::Stats));
        assert!(allowed_read_only(Opcode::Peek));
        assert!(allowed_read_only(Opcode::Subscribe));
        for op in [
            Opcode::Put,
            Opcode::Get,
            Opcode::Purge,
            Opcode::Lease,
            Opcode::Ack,
            Opcode::Nack,
            Opcode::Touch,
            Opcode::Move,
            Opcode::Bind,
            Opcode::Unbind,
            Opcode::Publish,
            Opcode::Req,
            Opcode::Reply,
        ] {
            assert!(!allowed_read_only(op), "{op:?}");
        }
    }
}
