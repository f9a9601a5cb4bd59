//! The multicast socket: UDP on `0.0.0.0:port`, joined to the group on one interface (or the
//! kernel's choice), announcing out of that interface. `SO_REUSEADDR` and, on Unix,
//! `SO_REUSEPORT` let several processes on one host listen on the same port (each gets every
//! multicast datagram). Announcements stay on the local link ([`MULTICAST_TTL`]) and loop back
//! to listeners on the sending host.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::announce::MAX_DATAGRAM;

/// Hops an announcement may take: 1 keeps it on the local link, which is where a cluster's
/// nodes find their orchestrator; routed multicast is out of scope.
pub const MULTICAST_TTL: u32 = 1;

/// Where announcements go and how the socket listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub group: Ipv4Addr,
    pub port: u16,
    /// Unspecified: the kernel's choice of interface.
    pub interface: Ipv4Addr,
}

impl Endpoint {
    pub fn from_settings(s: &crate::settings::DiscoverySettings) -> Endpoint {
        Endpoint {
            group: s.multicast_group,
            port: s.multicast_port,
            interface: s.multicast_interface,
        }
    }

    pub fn group_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.group, port))
    }
}

/// Opens the socket: bound to `0.0.0.0:port` (port 0: any, for tests), joined to the group on
/// the interface. Must run inside a tokio runtime (an actix arbiter is one). Fails when the
/// group cannot be joined (e.g. no interface with that address, no multicast route).
pub fn open(ep: &Endpoint) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ep.port)).into())?;
    socket.join_multicast_v4(&ep.group, &ep.interface)?;
    if !ep.interface.is_unspecified() {
        socket.set_multicast_if_v4(&ep.interface)?;
    }
    socket.set_multicast_ttl_v4(MULTICAST_TTL)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Sends one datagram to the group (at the socket's own port unless `port` says otherwise).
pub async fn send(socket: &UdpSocket, ep: &Endpoint, datagram: &[u8]) -> io::Result<()> {
    let port = if ep.port == 0 {
        socket.local_addr()?.port()
    } else {
        ep.port
    };
    socket.send_to(datagram, ep.group_addr(port)).await?;
    Ok(())
}

/// Receives one datagram and where it came from. Datagrams larger than [`MAX_DATAGRAM`] come
/// back cut to one byte more than that, so verification refuses them.
pub async fn recv(socket: &UdpSocket) -> io::Result<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let (n, from) = socket.recv_from(&mut buf).await?;
    buf.truncate(n);
    Ok((buf, from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{
        Announcement, Query, Registry, ReplayGuard, ServiceInstance, ServiceType, Source,
        effective_host, sign, verify,
    };

    /// An announcement through real sockets on loopback (sent unicast to the listener's port,
    /// so no multicast route is needed): verified and registered with the sender's address.
    #[tokio::test]
    async fn an_announcement_through_loopback_lands_in_the_registry() {
        let ep = Endpoint {
            group: Ipv4Addr::new(239, 255, 77, 1),
            port: 0,
            interface: Ipv4Addr::LOCALHOST,
        };
        let listener = open(&ep).expect("open on loopback");
        let port = listener.local_addr().unwrap().port();
        let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let me = ServiceInstance {
            service_id: "orch-1".into(),
            service_type: ServiceType::Orchestrator,
            name: "o".into(),
            host: "0.0.0.0".into(),
            port: 8080,
            capabilities: vec![],
            location: String::new(),
            healthy: true,
            metadata: Default::default(),
        };
        let now = crate::clock::unix_ms();
        let d = sign(&Announcement::new(me, now), b"k").unwrap();
        sender.send_to(&d, ("127.0.0.1", port)).await.unwrap();
        let (got, from) = recv(&listener).await.unwrap();
        let mut guard = ReplayGuard::default();
        let mut ann = verify(&got, b"k", now, &mut guard).unwrap();
        ann.service.host = effective_host(&ann.service.host, from.ip());
        let mut reg = Registry::default();
        reg.upsert(ann.service, Source::Multicast, now);
        let k = reg.query(&Query::default(), now);
        assert_eq!(k[0].service.host, "127.0.0.1");
        assert_eq!(k[0].service.service_id, "orch-1");
    }

    #[tokio::test]
    async fn oversized_datagrams_are_cut_so_they_fail() {
        let ep = Endpoint {
            group: Ipv4Addr::new(239, 255, 77, 2),
            port: 0,
            interface: Ipv4Addr::LOCALHOST,
        };
        let listener = open(&ep).unwrap();
        let port = listener.local_addr().unwrap().port();
        let sender = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sender
            .send_to(&vec![b'x'; MAX_DATAGRAM + 100], ("127.0.0.1", port))
            .await
            .unwrap();
        let (got, _) = recv(&listener).await.unwrap();
        assert_eq!(got.len(), MAX_DATAGRAM + 1);
    }

    #[test]
    fn joining_on_an_address_no_interface_has_fails() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let ep = Endpoint {
            group: Ipv4Addr::new(239, 255, 77, 3),
            port: 0,
            interface: Ipv4Addr::new(203, 0, 113, 77),
        };
        assert!(open(&ep).is_err());
    }
}
