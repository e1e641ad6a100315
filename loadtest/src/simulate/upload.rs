//! Uploads: admitted as far as API Gateway, the ingest Lambda and S3 let them.

use super::config::UploadPath;
use super::event::Event;
use super::resource::Resource;
use super::sim::Sim;
use super::stage::Stage;

impl Sim<'_> {
    /// Admits waiting uploads as far as API Gateway, the ingest Lambda and S3 let them.
    pub(super) fn admit(&mut self, t: f64) {
        let c = self.c;
        let waiting: u64 = self.clients.iter().map(|s| u64::from(s.n)).sum();
        let (requests_per_image, ingest_s_per_image, upload_s) = match c.upload_path {
            UploadPath::Direct => (1.0, c.direct_upload_s, c.direct_upload_s),
            UploadPath::Presigned => {
                (1.0 / f64::from(c.presign_batch), c.presign_s / f64::from(c.presign_batch), c.put_s)
            }
        };
        let slots = f64::from(self.scale_ingest.ceiling(c.lambda_scale_step))
            .min(self.account_free() + self.ingest_in_flight.ceil())
            .max(0.0);
        let by_lambda = if ingest_s_per_image > 0.0 { slots * c.step_s / ingest_s_per_image } else { f64::INFINITY };
        self.api.refill(t);
        let by_api = self.api.tokens.max(0.0) / requests_per_image;
        self.s3_originals.refill(t);
        let by_s3 = self.s3_originals.tokens.max(0.0);
        let admitted = (waiting as f64).min(by_lambda).min(by_api).min(by_s3).floor() as u64;
        if admitted < waiting {
            let limits = [
                (by_api, Resource::ApiGateway),
                (by_s3, Resource::S3Originals),
                (by_lambda, Resource::LambdaConcurrency),
            ];
            let (_, binding) = limits.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)).expect("three limits");
            self.saturate(binding);
        }
        self.api.tokens -= admitted as f64 * requests_per_image;
        self.s3_originals.tokens -= admitted as f64;
        self.ingest_in_flight = admitted as f64 * ingest_s_per_image / c.step_s;
        let mut left = admitted;
        while left > 0 {
            let front = self.clients.front_mut().expect("admitted no more than waiting");
            let take = u32::try_from(left.min(u64::from(front.n))).expect("a segment's size");
            let mut seg = front.take(take);
            if front.n == 0 {
                self.clients.pop_front();
            }
            left -= u64::from(take);
            let stored = t.max(seg.born) + upload_s;
            seg.enter(Stage::Delivery, stored);
            self.schedule(stored + c.delivery_s, Event::Delivered(seg));
        }
    }
}
