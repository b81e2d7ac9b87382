//! Delivery against real peers: the inbox dispatcher over the memory stores, and delivery end
//! to end over PostgreSQL with the real SMTP, webhook and inbox dispatchers.

mod end_to_end;
mod inbox;
