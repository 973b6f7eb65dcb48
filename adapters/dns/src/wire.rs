//! DNS messages to the primary: authoritative queries and TSIG-signed
//! RFC 2136 updates, over TCP.
//!
//! TCP because an answer never truncates there (a zone with many TXT records
//! would over UDP), and because a server that is down shows at once as a
//! refused connection instead of a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::{DnsExchange, FirstAnswer};
use hickory_net::{DnsHandle, DnsMultiplexer, NetError};
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Message, OpCode, Query, UpdateMessage,
};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

/// How a DNS exchange failed, before the adapter names the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// No connection, a reset, or no answer in time: worth retrying.
    Unreachable(String),
    /// The exchange itself failed (a response that does not verify against
    /// our TSIG key, a malformed message): configuration, not luck.
    Protocol(String),
}

/// One TCP connection to the primary, optionally signing every request.
pub struct Conn {
    exchange: DnsExchange<TokioRuntimeProvider>,
    timeout: Duration,
    bg: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.bg.abort();
    }
}

fn net_error(e: NetError) -> WireError {
    match e {
        NetError::Timeout | NetError::Io(_) | NetError::NoConnections | NetError::Busy => {
            WireError::Unreachable(e.to_string())
        }
        other => WireError::Protocol(other.to_string()),
    }
}

impl Conn {
    /// Connects to `server`; with `signer`, every request carries a TSIG
    /// signature and every response must verify against it.
    pub async fn connect(
        server: SocketAddr,
        timeout: Duration,
        signer: Option<TSigner>,
    ) -> Result<Conn, WireError> {
        let provider = TokioRuntimeProvider::new();
        let (connect, sender) = TcpClientStream::new(server, None, Some(timeout), provider);
        let stream = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                return Err(WireError::Unreachable(format!(
                    "no TCP connection to {server} within {timeout:?}"
                )));
            }
            Ok(Err(e)) => return Err(WireError::Unreachable(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let mut mux = DnsMultiplexer::new(stream, sender).with_timeout(timeout);
        if let Some(signer) = signer {
            mux = mux.with_signer(signer);
        }
        let (exchange, bg) = DnsExchange::<TokioRuntimeProvider>::from_stream(mux);
        let bg = tokio::spawn(async move {
            let _ = bg.await;
        });
        Ok(Conn {
            exchange,
            timeout,
            bg,
        })
    }

    /// Sends `message` and waits for its one answer.
    pub async fn send(&self, message: Message) -> Result<DnsResponse, WireError> {
        let request = DnsRequest::new(message, DnsRequestOptions::default());
        let answer = self.exchange.send(request).first_answer();
        match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => Err(WireError::Unreachable(format!(
                "no answer within {:?}",
                self.timeout
            ))),
            Ok(r) => r.map_err(net_error),
        }
    }

    /// The records of a zone transfer (AXFR) of `zone`, every message of
    /// it: the transfer ends with the zone's SOA again. Used for the
    /// catalog zone, whose members can only be listed this way.
    pub async fn transfer(&self, zone: Name) -> Result<Vec<Record>, WireError> {
        use futures_util::StreamExt;
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(zone, RecordType::AXFR));
        let request = DnsRequest::new(message, DnsRequestOptions::default());
        let mut stream = self.exchange.send(request);
        let mut records = Vec::new();
        let mut soas = 0;
        let deadline = tokio::time::Instant::now() + self.timeout * 4;
        while soas < 2 {
            let next = tokio::time::timeout_at(deadline, stream.next()).await;
            let response = match next {
                Err(_) => {
                    return Err(WireError::Unreachable(format!(
                        "zone transfer not finished within {:?}",
                        self.timeout * 4
                    )));
                }
                Ok(None) => break,
                Ok(Some(r)) => r.map_err(net_error)?,
            };
            if response.metadata.response_code != hickory_proto::op::ResponseCode::NoError {
                return Err(WireError::Protocol(format!(
                    "zone transfer refused: {}",
                    response.metadata.response_code
                )));
            }
            for r in &response.answers {
                if r.record_type() == RecordType::SOA {
                    soas += 1;
                }
                records.push(r.clone());
            }
        }
        if soas < 2 {
            return Err(WireError::Protocol("the zone transfer ended early".into()));
        }
        Ok(records)
    }

    /// An authoritative-style query: recursion not desired, so the answer
    /// comes from the server's own zones (check the AA bit on it).
    pub async fn query(&self, name: Name, rtype: RecordType) -> Result<DnsResponse, WireError> {
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        message.add_query(Query::query(name, rtype));
        with_edns(&mut message);
        self.send(message).await
    }
}

fn with_edns(message: &mut Message) {
    message
        .edns
        .get_or_insert_with(Edns::new)
        .set_max_payload(1232)
        .set_version(0);
}

/// One RFC 2136 update message for `origin`, without prerequisites: the
/// updates are applied in order, atomically, by the server.
pub fn update_message(origin: &Name, updates: Vec<Record>) -> Message {
    let mut zone = Query::new();
    zone.set_name(origin.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    let mut message = Message::query();
    message.metadata.op_code = OpCode::Update;
    message.metadata.recursion_desired = false;
    message.add_zone(zone);
    for r in updates {
        message.add_update(r);
    }
    with_edns(&mut message);
    message
}

/// "Delete an RRset" (RFC 2136 2.5.2): class ANY, TTL 0, empty rdata.
pub fn delete_rrset(name: Name, rtype: RecordType) -> Record {
    let mut r = Record::update0(name, 0, rtype);
    r.dns_class = DNSClass::ANY;
    r
}

/// "Delete an RR from an RRset" (RFC 2136 2.5.4): class NONE, TTL 0.
pub fn delete_record(name: Name, data: RData) -> Record {
    let mut r = Record::from_rdata(name, 0, data);
    r.dns_class = DNSClass::NONE;
    r
}
