//! Delivery adapters against their real peers (here: the inbox over the memory stores).

mod inbox;
