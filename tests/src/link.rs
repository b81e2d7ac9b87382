//! A TCP link to a server that a test can cut, as when the network to a database goes down.
//!
//! [`Link::to`] listens on a port of its own and forwards each connection to the server.
//! [`Link::cut`] closes every connection through it and, until [`Link::restore`], closes each
//! new one as soon as it is accepted: a client sees its statements fail and its reconnects
//! refused, while the server and its data stay untouched for the test to inspect afterwards.
//! [`Link::stall`] instead keeps every connection open and forwards nothing, as a network
//! that silently drops packets: a client waits for answers that do not come, until
//! [`Link::restore`] lets what was held through. [`Link::strand`] does that to the connections
//! open now only, for good, while new ones pass: peers that died without a word.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A cuttable TCP link; the forwarding stops when it is dropped.
#[derive(Debug)]
pub struct Link {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    stalled: tokio::sync::watch::Sender<Stall>,
    accepting: JoinHandle<()>,
}

/// What the link holds back: everything while `all`; connections accepted before
/// `before` (their sequence numbers) for good.
#[derive(Debug, Clone, Copy, Default)]
struct Stall {
    all: bool,
    before: u64,
}

#[derive(Debug, Default)]
struct State {
    cut: bool,
    /// How many connections were accepted.
    accepted: u64,
    /// The connections being forwarded (finished ones are pruned on each accept).
    connections: Vec<JoinHandle<()>>,
}

impl Link {
    /// A link on a loopback port of its own to the server at `upstream`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn to(upstream: SocketAddr) -> Link {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(err) => panic!("cannot bind a port for the link to {upstream}: {err}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(err) => panic!("the link's listener has no address: {err}"),
        };
        let state = Arc::new(Mutex::new(State::default()));
        let (stalled, forwarding) = tokio::sync::watch::channel(Stall::default());
        let accepting = tokio::spawn(accept(listener, upstream, state.clone(), forwarding));
        Link {
            address,
            state,
            stalled,
            accepting,
        }
    }

    /// Where clients connect to reach the server through the link.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes every connection through the link; until [`Link::restore`], new ones are closed
    /// as soon as accepted. Once this returns, no connection made before it is open.
    pub async fn cut(&self) {
        let connections = {
            let mut state = lock(&self.state);
            state.cut = true;
            std::mem::take(&mut state.connections)
        };
        for connection in connections {
            connection.abort();
            // Aborted or finished: either way its sockets are closed.
            let _ = connection.await;
        }
    }

    /// Keeps every connection open but forwards nothing, either way, until [`Link::restore`]
    /// (what arrives meanwhile is held, then forwarded).
    pub fn stall(&self) {
        self.stalled.send_modify(|stall| stall.all = true);
    }

    /// Forwards nothing more, ever, on the connections open now; new ones pass.
    pub fn strand(&self) {
        let accepted = lock(&self.state).accepted;
        self.stalled.send_modify(|stall| stall.before = accepted);
    }

    /// Lets new connections through again, and what a stall held (not what [`Link::strand`]
    /// stranded).
    pub fn restore(&self) {
        lock(&self.state).cut = false;
        self.stalled.send_modify(|stall| stall.all = false);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accepting.abort();
        for connection in &lock(&self.state).connections {
            connection.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn accept(
    listener: TcpListener,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    stalled: tokio::sync::watch::Receiver<Stall>,
) {
    while let Ok((client, _)) = listener.accept().await {
        // Decided under the lock `cut` takes, so no connection slips past a cut.
        let mut state = lock(&state);
        if state.cut {
            drop(client);
            continue;
        }
        state
            .connections
            .retain(|connection| !connection.is_finished());
        let number = state.accepted;
        state.accepted += 1;
        state.connections.push(tokio::spawn(forward(
            client,
            upstream,
            number,
            stalled.clone(),
        )));
    }
}

async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    number: u64,
    stalled: tokio::sync::watch::Receiver<Stall>,
) {
    if let Ok(server) = TcpStream::connect(upstream).await {
        let (from_client, to_client) = client.into_split();
        let (from_server, to_server) = server.into_split();
        // Either side closing ends the connection; the other side is closed on drop.
        tokio::select! {
            () = pump(from_client, to_server, number, stalled.clone()) => {}
            () = pump(from_server, to_client, number, stalled) => {}
        }
    }
}

/// Forwards what connection `number`'s `from` sends to its `to`, holding it while the link
/// holds that connection back.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    number: u64,
    mut stalled: tokio::sync::watch::Receiver<Stall>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if stalled
            .wait_for(|stall| !stall.all && number >= stall.before)
            .await
            .is_err()
            || to.write_all(&buffer[..read]).await.is_err()
        {
            return;
        }
    }
}
