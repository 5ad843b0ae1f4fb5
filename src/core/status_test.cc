#include "core/status.h"

#include <gtest/gtest.h>

namespace tarn {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error(ErrorCode::kInvalidArgument, "odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  RETURN_IF_ERROR(Status::OK());
  return Status::OK();
}

TEST(StatusTest, OkAndError) {
  EXPECT_TRUE(Status::OK().ok());
  Status s = Error(ErrorCode::kNotFound, "gone");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NotFound: gone");
  EXPECT_EQ(s.WithContext("reading x").message(), "reading x: gone");
}

TEST(StatusTest, MacrosPropagate) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  Status s = UseHalf(3, &v);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
}

TEST(StatusTest, RegistryMapsEveryEdge) {
  const ErrorInfo& info = GetErrorInfo(ErrorCode::kSqlUndefinedTable);
  EXPECT_EQ(info.sqlstate, "42P01");
  EXPECT_EQ(GetErrorInfo(ErrorCode::kUnknownOperation).aws_code, "UnknownOperationException");
  EXPECT_EQ(GetErrorInfo(ErrorCode::kInvalidAction).aws_code, "InvalidAction");
  EXPECT_EQ(GetErrorInfo(ErrorCode::kS3NotImplemented).http_status, 501);
  EXPECT_EQ(GetErrorInfo(ErrorCode::kAccessDenied).mqtt_reason, 0x87);
  EXPECT_EQ(GetErrorInfo(ErrorCode::kOk).http_status, 200);
}

}  // namespace
}  // namespace tarn
