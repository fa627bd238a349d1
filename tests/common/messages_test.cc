// The coordinator/worker messages: each survives its encode and decode unchanged, through the
// MessagePack envelope, and a malformed body is refused with an error naming the message and
// the field.
#include "common/messages.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/support/status_matchers.h"

namespace atp {
namespace {

// Encodes `message` into bytes as the communicator carries them, then decodes it back.
template <typename T>
Result<T> RoundTrip(const T& message) {
  ATP_ASSIGN_OR_RETURN(Message envelope, DecodeMessage(EncodeMessage(message)));
  return DecodeAs<T>(envelope);
}

// The body of `message` with `field` replaced by `value` (or removed when `value` is discarded).
template <typename T>
Json BodyWith(const T& message, const std::string& field, const Json& value) {
  Json body = EncodeBody(message);
  if (value.is_discarded()) {
    body.erase(field);
  } else {
    body[field] = value;
  }
  return body;
}

const Json kRemoved = Json(Json::value_t::discarded);

// The decode error of a body, "" when it decodes.
template <typename T>
std::string ErrorOf(const Json& body) {
  Result<T> decoded = DecodeBody<T>(body);
  return decoded.ok() ? "" : decoded.status().message();
}

AssignMessage SampleAssign() {
  AssignMessage m;
  m.job_id = 41;
  m.attempt_id = 1234567890123;
  m.attempt = 2;
  m.attempt_number = 3;
  m.spec.stage = "train";
  m.spec.method = "coop";
  m.spec.params = Json{{"dataset", "eurosat"}, {"seed", 1}, {"n_ctx", 4}};
  m.spec.upstream = {"abc"};
  m.spec.code_version = "7";
  m.spec.ranks = 2;
  m.spec.hang_timeout_s = 45.5;
  m.spec.retry.max_attempts = 5;
  m.spec.retry.rule(FailureClass::kHung).retry = false;
  m.upstream = {UpstreamJob{"abc", "search", "attribute_search", Json{{"attributes", {"color", "shape"}}}}};
  m.ranks = {3, 4};
  m.group_tag = 17;
  m.resume = "/jobs/x/checkpoint.pth";
  m.workdir = "/jobs/x";
  return m;
}

FinishedMessage SampleSuccess() {
  FinishedMessage m;
  m.job_id = 5;
  m.attempt_id = 9;
  m.ok = true;
  m.metrics = {{"accuracy", 91.25}, {"loss", 0.125}};
  m.outputs = Json{{"attributes", {"color"}}};
  m.artifacts = {{"log", "/jobs/x/attempt-1.log"}};
  return m;
}

TEST(MessagesTest, HelloRoundTrips) {
  auto back = RoundTrip(HelloMessage{"node-7", 4242});
  ASSERT_OK(back);
  EXPECT_EQ(back->node, "node-7");
  EXPECT_EQ(back->pid, 4242);
}

TEST(MessagesTest, AssignRoundTripsEveryField) {
  const AssignMessage sent = SampleAssign();
  auto back = RoundTrip(sent);
  ASSERT_OK(back);
  EXPECT_EQ(back->job_id, sent.job_id);
  EXPECT_EQ(back->attempt_id, sent.attempt_id);
  EXPECT_EQ(back->attempt, 2);
  EXPECT_EQ(back->attempt_number, 3);
  EXPECT_EQ(back->spec.ToJson(), sent.spec.ToJson());
  EXPECT_EQ(back->spec.Key(), sent.spec.Key());
  EXPECT_EQ(back->spec.hang_timeout_s, 45.5);  // the hang timeout travels in the spec, once
  EXPECT_FALSE(EncodeBody(sent).contains("hang_timeout_s"));
  ASSERT_EQ(back->upstream.size(), 1u);
  EXPECT_EQ(back->upstream[0].key, "abc");
  EXPECT_EQ(back->upstream[0].stage, "search");
  EXPECT_EQ(back->upstream[0].method, "attribute_search");
  EXPECT_EQ(back->upstream[0].outputs, sent.upstream[0].outputs);
  EXPECT_EQ(back->ranks, (std::vector<int>{3, 4}));
  EXPECT_EQ(back->group_tag, 17);
  EXPECT_EQ(back->resume, sent.resume);
  EXPECT_EQ(back->workdir, sent.workdir);
}

TEST(MessagesTest, ProgressCheckpointHeartbeatAndCancelRoundTrip) {
  auto progress = RoundTrip(ProgressMessage{5, 9, 120, 400});
  ASSERT_OK(progress);
  EXPECT_EQ(progress->job_id, 5);
  EXPECT_EQ(progress->attempt_id, 9);
  EXPECT_EQ(progress->step, 120);
  EXPECT_EQ(progress->total, 400);

  auto checkpoint = RoundTrip(CheckpointMessage{5, 9, "/jobs/x/checkpoint.pth"});
  ASSERT_OK(checkpoint);
  EXPECT_EQ(checkpoint->attempt_id, 9);
  EXPECT_EQ(checkpoint->path, "/jobs/x/checkpoint.pth");

  auto heartbeat = RoundTrip(HeartbeatMessage{true, 5});
  ASSERT_OK(heartbeat);
  EXPECT_TRUE(heartbeat->busy);
  EXPECT_EQ(heartbeat->job_id, 5);

  auto cancel = RoundTrip(CancelMessage{5, 9});
  ASSERT_OK(cancel);
  EXPECT_EQ(cancel->job_id, 5);
  EXPECT_EQ(cancel->attempt_id, 9);

  EXPECT_OK(RoundTrip(PreemptMessage{}));
  EXPECT_OK(RoundTrip(ShutdownMessage{}));
}

TEST(MessagesTest, FinishedRoundTripsSuccessAndEveryFailureClass) {
  const FinishedMessage sent = SampleSuccess();
  auto back = RoundTrip(sent);
  ASSERT_OK(back);
  EXPECT_TRUE(back->ok);
  EXPECT_EQ(back->metrics, sent.metrics);
  EXPECT_EQ(back->outputs, sent.outputs);
  EXPECT_EQ(back->artifacts, sent.artifacts);

  for (int i = 0; i < kFailureClassCount; ++i) {
    const auto failure_class = static_cast<FailureClass>(i);
    FinishedMessage failed = FinishedMessage::Failure(failure_class, "it went wrong");
    failed.attempt_id = 9;
    failed.discard_checkpoint = i % 2 == 0;
    failed.no_space_left = i % 3 == 0;
    auto decoded = RoundTrip(failed);
    ASSERT_OK(decoded);
    EXPECT_FALSE(decoded->ok);
    EXPECT_EQ(decoded->failure_class, failure_class) << FailureClassName(failure_class);
    EXPECT_EQ(decoded->message, "it went wrong");
    EXPECT_EQ(decoded->discard_checkpoint, failed.discard_checkpoint);
    EXPECT_EQ(decoded->no_space_left, failed.no_space_left);
    // On the wire the class is the name the store records.
    EXPECT_EQ(EncodeBody(failed)["failure_class"], FailureClassName(failure_class));
  }
}

TEST(MessagesTest, FinishedKeepsANotANumberMetric) {
  FinishedMessage sent = SampleSuccess();
  sent.metrics["loss"] = std::nan("");
  auto back = RoundTrip(sent);
  ASSERT_OK(back);
  EXPECT_TRUE(std::isnan(back->metrics.at("loss")));
}

TEST(MessagesTest, DecodingTheWrongTypeIsAnError) {
  auto envelope = DecodeMessage(EncodeMessage(CancelMessage{1, 2}));
  ASSERT_OK(envelope);
  auto wrong = DecodeAs<AssignMessage>(*envelope);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("expected a assign message, got cancel"), std::string::npos)
      << wrong.status().message();
}

TEST(MessagesTest, MalformedHelloNamesTheField) {
  const HelloMessage hello{"n", 1};
  EXPECT_EQ(ErrorOf<HelloMessage>(BodyWith(hello, "node", 7)), "hello message: 'node' must be a string, got 7");
  EXPECT_EQ(ErrorOf<HelloMessage>(BodyWith(hello, "pid", kRemoved)), "hello message: 'pid' is missing");
  EXPECT_EQ(ErrorOf<HelloMessage>(Json::array()), "hello message: the body is not an object");
}

TEST(MessagesTest, MalformedAssignNamesTheField) {
  const AssignMessage assign = SampleAssign();
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "job_id", kRemoved)), "assign message: 'job_id' is missing");
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "attempt_id", "12")),
            "assign message: 'attempt_id' must be an integer, got \"12\"");
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "attempt", int64_t{1} << 40)),
            "assign message: 'attempt' is out of range: 1099511627776");
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "ranks", Json::array())), "assign message: 'ranks' is empty");
  EXPECT_NE(ErrorOf<AssignMessage>(BodyWith(assign, "ranks", Json::array({1, "two"}))).find("'ranks' must hold ranks"),
            std::string::npos);
  EXPECT_NE(ErrorOf<AssignMessage>(BodyWith(assign, "spec", Json{{"stage", "x"}})).find("assign message: 'spec' "),
            std::string::npos);
  EXPECT_NE(ErrorOf<AssignMessage>(BodyWith(assign, "upstream", Json::array({Json{{"key", "a"}}})))
                .find("assign message: 'upstream[0]' is malformed"),
            std::string::npos);
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "workdir", nullptr)),
            "assign message: 'workdir' must be a string, got null");
  EXPECT_EQ(ErrorOf<AssignMessage>(BodyWith(assign, "group_tag", 1.5)),
            "assign message: 'group_tag' must be an integer, got 1.5");
}

TEST(MessagesTest, MalformedProgressCheckpointHeartbeatAndCancelNameTheField) {
  EXPECT_EQ(ErrorOf<ProgressMessage>(BodyWith(ProgressMessage{1, 2, 3, 4}, "step", "3")),
            "progress message: 'step' must be an integer, got \"3\"");
  EXPECT_EQ(ErrorOf<CheckpointMessage>(BodyWith(CheckpointMessage{1, 2, "p"}, "path", "")),
            "checkpoint message: 'path' is empty");
  EXPECT_EQ(ErrorOf<HeartbeatMessage>(BodyWith(HeartbeatMessage{true, 1}, "busy", 1)),
            "heartbeat message: 'busy' must be true or false, got 1");
  EXPECT_EQ(ErrorOf<CancelMessage>(BodyWith(CancelMessage{1, 2}, "attempt_id", kRemoved)),
            "cancel message: 'attempt_id' is missing");
  EXPECT_EQ(ErrorOf<PreemptMessage>(Json("x")), "preempt message: the body is not an object");
  EXPECT_EQ(ErrorOf<ShutdownMessage>(Json(3)), "shutdown message: the body is not an object");
}

TEST(MessagesTest, MalformedFinishedNamesTheField) {
  FinishedMessage failed = FinishedMessage::Failure(FailureClass::kHung, "stuck");
  EXPECT_EQ(ErrorOf<FinishedMessage>(BodyWith(failed, "failure_class", "tired")),
            "finished message: 'failure_class' names no failure class: 'tired'");
  EXPECT_EQ(ErrorOf<FinishedMessage>(BodyWith(failed, "ok", "no")),
            "finished message: 'ok' must be true or false, got \"no\"");
  EXPECT_NE(ErrorOf<FinishedMessage>(BodyWith(failed, "artifacts", Json::array({"log"})))
                .find("finished message: 'artifacts' must be a list of [kind, path]"),
            std::string::npos);
  EXPECT_EQ(ErrorOf<FinishedMessage>(BodyWith(SampleSuccess(), "metrics", Json{{"accuracy", "high"}})),
            "finished message: 'metrics' 'accuracy' must be a number, got \"high\"");
  // A failure without a class or message is still an outcome: class error, "no message".
  Json bare = {{"job_id", 1}, {"attempt_id", 2}, {"ok", false}};
  auto decoded = DecodeBody<FinishedMessage>(bare);
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->failure_class, FailureClass::kError);
  EXPECT_EQ(decoded->message, "no message");
}

}  // namespace
}  // namespace atp
