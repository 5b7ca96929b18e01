//! The errors of the frame and message layer, each with the close code it
//! earns (RFC 6455 section 7.4.1).
//!
//! The HTTP and handshake layers have enums of their own (`HttpError`,
//! `HandshakeError`) because they end in an HTTP status, not a close frame.

use super::close::CloseCode;

/// A violation by the peer that fails the WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("reserved bits set without a negotiated extension")]
    ReservedBitsSet,
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("client frame not masked")]
    UnmaskedFrame,
    #[error("server frame masked")]
    MaskedFrame,
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlFrameTooLarge(u64),
    #[error("close frame payload of {0} bytes exceeds 125")]
    CloseFrameTooLarge(u64),
    #[error("64-bit payload length with the most significant bit set")]
    InvalidPayloadLength,
    #[error("continuation frame without a message to continue")]
    ContinuationWithoutStart,
    #[error("new data frame inside a fragmented message")]
    DataFrameInsideFragmentedMessage,
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame with a 1-byte payload")]
    InvalidClosePayloadLength,
    #[error("close code {0} is not allowed on the wire")]
    InvalidCloseCode(u16),
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    #[error("message of {size} bytes exceeds the limit of {max}")]
    MessageTooLarge { size: u64, max: u64 },
    #[error("compressed message is not valid DEFLATE data")]
    BadCompressedData,
}

impl ProtocolError {
    /// True when the offending frame was the peer's close frame: the peer
    /// has already closed its side, so no close reply will follow ours.
    pub fn is_in_close_frame(&self) -> bool {
        matches!(
            self,
            ProtocolError::InvalidClosePayloadLength
                | ProtocolError::CloseFrameTooLarge(_)
                | ProtocolError::InvalidCloseCode(_)
                | ProtocolError::InvalidCloseReason
        )
    }

    /// The close code this violation is answered with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::BadCompressedData => CloseCode::INVALID_PAYLOAD,
            ProtocolError::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_maps_to_its_close_code() {
        assert_eq!(ProtocolError::ReservedBitsSet.close_code().0, 1002);
        assert_eq!(ProtocolError::ReservedOpcode(3).close_code().0, 1002);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code().0, 1002);
        assert_eq!(ProtocolError::MaskedFrame.close_code().0, 1002);
        assert_eq!(ProtocolError::FragmentedControlFrame.close_code().0, 1002);
        assert_eq!(
            ProtocolError::ControlFrameTooLarge(126).close_code().0,
            1002
        );
        assert_eq!(ProtocolError::InvalidPayloadLength.close_code().0, 1002);
        assert_eq!(ProtocolError::ContinuationWithoutStart.close_code().0, 1002);
        assert_eq!(
            ProtocolError::DataFrameInsideFragmentedMessage
                .close_code()
                .0,
            1002
        );
        assert_eq!(
            ProtocolError::InvalidClosePayloadLength.close_code().0,
            1002
        );
        assert_eq!(ProtocolError::InvalidCloseCode(1005).close_code().0, 1002);
        assert_eq!(ProtocolError::InvalidUtf8.close_code().0, 1007);
        assert_eq!(ProtocolError::InvalidCloseReason.close_code().0, 1007);
        assert_eq!(
            ProtocolError::MessageTooLarge { size: 2, max: 1 }
                .close_code()
                .0,
            1009
        );
    }

    #[test]
    fn reasons_fit_a_close_frame() {
        let e = ProtocolError::MessageTooLarge {
            size: u64::MAX,
            max: u64::MAX,
        };
        assert!(e.to_string().len() <= super::super::close::MAX_REASON_BYTES);
    }
}
