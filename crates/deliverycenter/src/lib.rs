//! deliverycenter
