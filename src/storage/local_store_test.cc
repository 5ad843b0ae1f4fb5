#include "storage/local_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/crypto.h"
#include "core/strings.h"
#include "storage/checksum.h"

namespace tarn::storage {
namespace {

namespace fs = std::filesystem;

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tarn-store-" + RandomString(8));
    fs::create_directories(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    meta_.reset();
    fs::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    meta_.reset();
    auto m = MetaStore::Open((dir_ / "tarn.db").string());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    meta_ = std::move(*m);
    auto s = LocalObjectStore::Open(root(), meta_.get(), "us-east-1", {"landing", "curated", "audit"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    store_->set_min_part_size(5);
  }
  std::string root() const { return (dir_ / "objects").string(); }

  ObjectInfo Put(const std::string& bucket, const std::string& key, const std::string& data) {
    StringSource src(data);
    auto r = store_->PutObject(bucket, key, src, PutOptions{});
    EXPECT_TRUE(r.ok()) << key << ": " << r.status().ToString();
    return r.ok() ? *r : ObjectInfo{};
  }
  std::string Get(const std::string& bucket, const std::string& key, GetOptions o = {}) {
    auto r = store_->GetObject(bucket, key, o);
    if (!r.ok()) return "<" + r.status().ToString() + ">";
    std::string out;
    char buf[7];  // small on purpose: many reads
    while (true) {
      auto n = (*r)->Read(buf, sizeof(buf));
      if (!n.ok() || *n == 0) break;
      out.append(buf, *n);
    }
    return out;
  }
  std::vector<std::string> Keys(const std::string& bucket, ListOptions o = {}) {
    auto r = store_->ListObjects(bucket, o);
    EXPECT_TRUE(r.ok());
    std::vector<std::string> keys;
    for (const auto& i : r->objects) keys.push_back(i.key);
    for (const auto& p : r->common_prefixes) keys.push_back("P:" + p);
    return keys;
  }

  fs::path dir_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<LocalObjectStore> store_;
};

TEST_F(LocalStoreTest, DefaultBucketsAndNaturalPaths) {
  auto b = store_->ListBuckets();
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), 3u);
  EXPECT_EQ((*b)[0].name, "audit");
  ObjectInfo info = Put("landing", "iot/s1/year=2026/month=11/x.parquet", "hello");
  EXPECT_EQ(info.etag, HexEncode(Md5("hello")));
  EXPECT_EQ(info.version_id, "null");
  std::string natural = root() + "/landing/iot/s1/year=2026/month=11/x.parquet";
  EXPECT_TRUE(fs::is_regular_file(natural));
  EXPECT_EQ(*store_->LocalPath("landing", "iot/s1/year=2026/month=11/x.parquet"), natural);
  EXPECT_EQ(Get("landing", "iot/s1/year=2026/month=11/x.parquet"), "hello");
  EXPECT_EQ(store_->CreateBucket("landing").code(), ErrorCode::kBucketAlreadyOwnedByYou);
  EXPECT_EQ(store_->CreateBucket("Bad_Name").code(), ErrorCode::kInvalidBucketName);
  EXPECT_EQ(store_->DeleteBucket("landing").code(), ErrorCode::kBucketNotEmpty);
  EXPECT_EQ(store_->HeadBucket("nope").status().code(), ErrorCode::kNoSuchBucket);
}

TEST_F(LocalStoreTest, OddKeysRoundTripAndStayInside) {
  std::vector<std::string> keys = {
      "a", "a/b", "a/b/c", "with space", "plus+sign", "per%cent", "double//slash", "/leading",
      "trailing/", "./dot", "../escape", "x/../../../etc/passwd", "..", ".", "ünïcødé/日本",
      std::string(1024, 'k'), std::string(300, 's') + "/x", "tab\there", "q?x=1&y#z",
      ".hidden/file", "dir/"};
  for (size_t i = 0; i < keys.size(); ++i) Put("curated", keys[i], "v" + std::to_string(i));
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(Get("curated", keys[i]), "v" + std::to_string(i)) << keys[i];
    auto p = store_->LocalPath("curated", keys[i]);
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE(StartsWith(fs::weakly_canonical(*p).string(), root() + "/")) << *p;
  }
  // Nothing was written outside the objects root.
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
  EXPECT_FALSE(fs::exists(dir_ / "etc"));
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  ListOptions o;
  o.max_keys = 1000;
  EXPECT_EQ(Keys("curated", o), sorted);
  // Ordinary keys are at their natural path.
  EXPECT_EQ(*store_->LocalPath("curated", "ünïcødé/日本"), root() + "/curated/ünïcødé/日本");
  EXPECT_EQ(*store_->LocalPath("curated", "with space"), root() + "/curated/with space");
  // `a` was written first, as a file: `a/b` cannot be a directory beside it and lives
  // internally.
  EXPECT_EQ(*store_->LocalPath("curated", "a"), root() + "/curated/a");
  EXPECT_TRUE(StartsWith(*store_->LocalPath("curated", "a/b"), root() + "/.tarn/"));
  EXPECT_TRUE(StartsWith(*store_->LocalPath("curated", "../escape"), root() + "/.tarn/"));
  ASSERT_TRUE(ValidateKey(std::string(1025, 'k')).code() == ErrorCode::kKeyTooLong);
  StringSource src("x");
  EXPECT_EQ(store_->PutObject("curated", std::string(1025, 'k'), src, {}).status().code(),
            ErrorCode::kKeyTooLong);
  // Deleting everything leaves an empty bucket folder (directories cleaned up).
  for (const auto& k : keys) ASSERT_TRUE(store_->DeleteObject("curated", k, "").ok());
  EXPECT_TRUE(Keys("curated").empty());
  EXPECT_TRUE(fs::is_empty(root() + "/curated"));
  EXPECT_TRUE(store_->DeleteBucket("curated").ok());
}

TEST_F(LocalStoreTest, ListingSemantics) {
  for (std::string k : {"a/1", "a/2", "a/b/3", "b", "c/x/y", "c/z", "d"}) Put("landing", k, k);
  ListOptions o;
  o.delimiter = "/";
  EXPECT_EQ(Keys("landing", o), (std::vector<std::string>{"b", "d", "P:a/", "P:c/"}));
  o.prefix = "a/";
  EXPECT_EQ(Keys("landing", o), (std::vector<std::string>{"a/1", "a/2", "P:a/b/"}));
  o.prefix = "c";
  EXPECT_EQ(Keys("landing", o), (std::vector<std::string>{"P:c/"}));
  // Pagination through common prefixes and keys, one entry per page.
  ListOptions p;
  p.delimiter = "/";
  p.max_keys = 1;
  std::vector<std::string> seen;
  for (int i = 0; i < 10; ++i) {
    auto r = store_->ListObjects("landing", p);
    ASSERT_TRUE(r.ok());
    for (const auto& x : r->objects) seen.push_back(x.key);
    for (const auto& x : r->common_prefixes) seen.push_back("P:" + x);
    if (!r->truncated) break;
    p.start_after = r->next_start_after;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"P:a/", "b", "P:c/", "d"}));
  ListOptions s;
  s.start_after = "a/2";
  EXPECT_EQ(Keys("landing", s), (std::vector<std::string>{"a/b/3", "b", "c/x/y", "c/z", "d"}));
  ListOptions two;
  two.max_keys = 2;
  auto r = store_->ListObjects("landing", two);
  EXPECT_TRUE(r->truncated);
  EXPECT_EQ(r->next_start_after, "a/2");
}

TEST_F(LocalStoreTest, Ranges) {
  Put("landing", "r", "0123456789");
  GetOptions g;
  g.range_first = 2;
  g.range_last = 4;
  EXPECT_EQ(Get("landing", "r", g), "234");
  g.range_last = 100;
  EXPECT_EQ(Get("landing", "r", g), "23456789");
  GetOptions s;
  s.suffix_length = 3;
  EXPECT_EQ(Get("landing", "r", s), "789");
  GetOptions bad;
  bad.range_first = 10;
  EXPECT_EQ(store_->GetObject("landing", "r", bad).status().code(), ErrorCode::kInvalidRange);
}

class FailingSource : public ByteSource {
 public:
  Result<size_t> Read(char* buf, size_t n) override {
    if (sent_++ < 3) {
      memset(buf, 'z', std::min<size_t>(n, 100));
      return std::min<size_t>(n, 100);
    }
    return Error(ErrorCode::kIncompleteBody, "client went away");
  }
  int sent_ = 0;
};

TEST_F(LocalStoreTest, FailedPutsLeaveTheOldObject) {
  Put("landing", "k", "old");
  FailingSource bad;
  EXPECT_FALSE(store_->PutObject("landing", "k", bad, {}).ok());
  EXPECT_EQ(Get("landing", "k"), "old");
  PutOptions reject;
  reject.verify = [](const ObjectInfo&) { return Error(ErrorCode::kBadDigest, "mismatch"); };
  StringSource src("new");
  EXPECT_EQ(store_->PutObject("landing", "k", src, reject).status().code(), ErrorCode::kBadDigest);
  EXPECT_EQ(Get("landing", "k"), "old");
  FailingSource bad2;
  EXPECT_FALSE(store_->PutObject("landing", "fresh", bad2, {}).ok());
  EXPECT_EQ(store_->HeadObject("landing", "fresh", "").status().code(), ErrorCode::kNoSuchKey);
  size_t temp_files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root() + "/.tarn/tmp")) {
    if (!e.is_directory()) ++temp_files;
  }
  EXPECT_EQ(temp_files, 0u);
}

TEST_F(LocalStoreTest, CrashRecoveryOfIntents) {
  Put("landing", "k", "old");
  // A crash after the intent was recorded but before the rename: the PUT never happened.
  std::string tmp = root() + "/.tarn/tmp/crashed";
  {
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    std::fputs("torn", f);
    std::fclose(f);
  }
  std::string body = "{\"tmp\":\"" + tmp + "\",\"bucket\":\"landing\",\"key\":\"k\","
                     "\"version_id\":\"null\",\"size\":4,\"etag\":\"x\",\"modified\":1,\"parts\":0,"
                     "\"attrs\":\"{}\",\"checksums\":\"{}\",\"location\":\"landing/k\"}";
  auto ins = meta_->Prepare("INSERT INTO s3_intents(body) VALUES(?1)");
  ASSERT_TRUE(ins.ok());
  ins->Bind(1, body);
  ASSERT_TRUE(ins->Run().ok());
  Reopen();
  EXPECT_EQ(Get("landing", "k"), "old");
  EXPECT_FALSE(fs::exists(tmp));
  // A crash after the rename but before the index: the PUT is completed at start-up.
  {
    std::FILE* f = std::fopen((root() + "/landing/k").c_str(), "w");
    std::fputs("newer", f);
    std::fclose(f);
  }
  std::string body2 = "{\"tmp\":\"" + root() + "/.tarn/tmp/gone\",\"bucket\":\"landing\","
                      "\"key\":\"k\",\"version_id\":\"null\",\"size\":5,\"etag\":\"" +
                      HexEncode(Md5("newer")) + "\",\"modified\":1,\"parts\":0,\"attrs\":\"{}\","
                      "\"checksums\":\"{}\",\"location\":\"landing/k\"}";
  auto ins2 = meta_->Prepare("INSERT INTO s3_intents(body) VALUES(?1)");
  ins2->Bind(1, body2);
  ASSERT_TRUE(ins2->Run().ok());
  Reopen();
  EXPECT_EQ(Get("landing", "k"), "newer");
  EXPECT_EQ(store_->HeadObject("landing", "k", "")->size, 5u);
}

TEST_F(LocalStoreTest, ConcurrentPutsLastWriterWinsWhole) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 5; ++i) {
        std::string data(20000 + t * 1000, static_cast<char>('a' + t));
        StringSource src(data);
        ASSERT_TRUE(store_->PutObject("landing", "hot", src, {}).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string got = Get("landing", "hot");
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got, std::string(got.size(), got[0]));
  EXPECT_EQ(got.size(), 20000u + (got[0] - 'a') * 1000u);
  EXPECT_EQ(store_->HeadObject("landing", "hot", "")->etag, HexEncode(Md5(got)));
}

// Group commit: many PUTs at once, of distinct keys in new folders and of one key of a
// versioned bucket; every acknowledged PUT is there, every version keeps its own bytes.
TEST_F(LocalStoreTest, ConcurrentPutsGroupCommit) {
  ASSERT_TRUE(store_->CreateBucket("vers").ok());
  ASSERT_TRUE(store_->SetVersioning("vers", Versioning::kEnabled).ok());
  constexpr int kThreads = 8, kPuts = 6;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::map<std::string, std::string> version_bytes;  // version id → bytes
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPuts; ++i) {
        std::string data = "t" + std::to_string(t) + "-" + std::to_string(i);
        StringSource a(data);
        auto r = store_->PutObject("landing", "g/t" + std::to_string(t) + "/d" + std::to_string(i) + "/k",
                                   a, {});
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        StringSource b(data);
        auto v = store_->PutObject("vers", "same", b, {});
        ASSERT_TRUE(v.ok()) << v.status().ToString();
        std::lock_guard lock(mu);
        version_bytes[v->version_id] = data;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPuts; ++i) {
      EXPECT_EQ(Get("landing", "g/t" + std::to_string(t) + "/d" + std::to_string(i) + "/k"),
                "t" + std::to_string(t) + "-" + std::to_string(i));
    }
  }
  ASSERT_EQ(version_bytes.size(), size_t{kThreads * kPuts});
  VersionListOptions vo;
  vo.max_keys = 1000;
  auto versions = store_->ListObjectVersions("vers", vo);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ(versions->versions.size(), size_t{kThreads * kPuts});
  for (const auto& [vid, bytes] : version_bytes) {
    GetOptions g;
    g.version_id = vid;
    EXPECT_EQ(Get("vers", "same", g), bytes);
  }
}

// Upload ids are passed on command lines (aws s3api … --upload-id ID): one starting with '-' is
// read as an option. Random ids would start with one about once in 64.
TEST_F(LocalStoreTest, UploadIdsNeverStartWithADash) {
  for (int i = 0; i < 300; ++i) {
    auto up = store_->CreateMultipartUpload("landing", "k" + std::to_string(i), {}, {}, false);
    ASSERT_TRUE(up.ok());
    ASSERT_FALSE(up->upload_id.empty());
    EXPECT_NE(up->upload_id[0], '-') << up->upload_id;
  }
}

TEST_F(LocalStoreTest, Multipart) {
  auto up = store_->CreateMultipartUpload("landing", "big", {}, {ChecksumAlgorithm::kCrc32}, false);
  ASSERT_TRUE(up.ok());
  std::vector<std::string> parts = {"part-one-", "part-two-", "end"};
  std::vector<CompletePart> done;
  std::string md5s;
  for (size_t i = 0; i < parts.size(); ++i) {
    StringSource src(parts[i]);
    auto p = store_->UploadPart("landing", "big", up->upload_id, int(i + 1), src, {}, nullptr);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    done.push_back({int(i + 1), "\"" + p->etag + "\""});
    md5s += Md5(parts[i]);
  }
  auto listed = store_->ListParts("landing", "big", up->upload_id);
  ASSERT_EQ(listed->size(), 3u);
  auto uploads = store_->ListMultipartUploads("landing", "");
  ASSERT_EQ(uploads->size(), 1u);
  std::vector<CompletePart> wrong_order = {done[1], done[0]};
  EXPECT_EQ(store_->CompleteMultipartUpload("landing", "big", up->upload_id, wrong_order, {}).status().code(),
            ErrorCode::kInvalidPartOrder);
  std::vector<CompletePart> bad_etag = {{1, "\"00\""}};
  EXPECT_EQ(store_->CompleteMultipartUpload("landing", "big", up->upload_id, bad_etag, {}).status().code(),
            ErrorCode::kInvalidPart);
  std::vector<CompletePart> small_first = {done[2], {4, "x"}};
  small_first = {{3, done[2].etag}, {4, done[2].etag}};
  auto info = store_->CompleteMultipartUpload("landing", "big", up->upload_id, done, {});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->etag, HexEncode(Md5(md5s)) + "-3");
  EXPECT_TRUE(EndsWith(info->checksums["CRC32"], "-3"));
  EXPECT_EQ(Get("landing", "big"), "part-one-part-two-end");
  auto head = store_->HeadObject("landing", "big", "");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->part_sizes, (std::vector<uint64_t>{9, 9, 3}));  // for GET ?partNumber=N
  EXPECT_EQ(store_->ListParts("landing", "big", up->upload_id).status().code(), ErrorCode::kNoSuchUpload);
  // FULL_OBJECT: the CRC32 of all the bytes, combined from the parts', without "-N"; a
  // rejecting `verify` stores nothing and keeps the upload.
  auto full = store_->CreateMultipartUpload("landing", "full", {}, {ChecksumAlgorithm::kCrc32}, true);
  ASSERT_TRUE(full.ok());
  std::vector<CompletePart> full_parts;
  for (int n = 1; n <= 2; ++n) {
    StringSource src(n == 1 ? "first part " : "and the second");
    auto p = store_->UploadPart("landing", "full", full->upload_id, n, src, {}, nullptr);
    ASSERT_TRUE(p.ok());
    full_parts.push_back({n, p->etag});
  }
  auto reject = [](const ObjectInfo&) { return Error(ErrorCode::kBadDigest, "no"); };
  EXPECT_EQ(store_->CompleteMultipartUpload("landing", "full", full->upload_id, full_parts, reject).status().code(),
            ErrorCode::kBadDigest);
  EXPECT_EQ(store_->HeadObject("landing", "full", "").status().code(), ErrorCode::kNoSuchKey);
  auto whole = store_->CompleteMultipartUpload("landing", "full", full->upload_id, full_parts, {});
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->checksums["CRC32"],
            Base64Encode(ComputeChecksum(ChecksumAlgorithm::kCrc32, "first part and the second")));
  EXPECT_TRUE(store_->ListMultipartUploads("landing", "")->empty());
  // EntityTooSmall for a short non-last part.
  store_->set_min_part_size(100);
  auto up2 = store_->CreateMultipartUpload("landing", "small", {}, {}, false);
  std::vector<CompletePart> two;
  for (int i = 1; i <= 2; ++i) {
    StringSource src("tiny");
    auto p = store_->UploadPart("landing", "small", up2->upload_id, i, src, {}, nullptr);
    two.push_back({i, p->etag});
  }
  EXPECT_EQ(store_->CompleteMultipartUpload("landing", "small", up2->upload_id, two, {}).status().code(),
            ErrorCode::kEntityTooSmall);
  EXPECT_TRUE(store_->AbortMultipartUpload("landing", "small", up2->upload_id).ok());
  EXPECT_EQ(store_->AbortMultipartUpload("landing", "small", up2->upload_id).code(), ErrorCode::kNoSuchUpload);
}

TEST_F(LocalStoreTest, Versioning) {
  ASSERT_TRUE(store_->SetVersioning("landing", Versioning::kEnabled).ok());
  ObjectInfo v1 = Put("landing", "doc", "first");
  ObjectInfo v2 = Put("landing", "doc", "second");
  EXPECT_NE(v1.version_id, v2.version_id);
  EXPECT_EQ(Get("landing", "doc"), "second");
  GetOptions g;
  g.version_id = v1.version_id;
  EXPECT_EQ(Get("landing", "doc", g), "first");
  EXPECT_EQ(*store_->LocalPath("landing", "doc"), root() + "/landing/doc");
  auto del = store_->DeleteObject("landing", "doc", "");
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->delete_marker);
  EXPECT_EQ(store_->HeadObject("landing", "doc", "").status().code(), ErrorCode::kNoSuchKey);
  EXPECT_FALSE(fs::exists(root() + "/landing/doc"));
  EXPECT_TRUE(Keys("landing").empty());
  auto versions = store_->ListObjectVersions("landing", {});
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->versions.size(), 3u);
  EXPECT_TRUE(versions->versions[0].delete_marker);
  EXPECT_TRUE(versions->versions[0].is_latest);
  EXPECT_EQ(versions->versions[1].version_id, v2.version_id);
  // Removing the delete marker brings back v2.
  ASSERT_TRUE(store_->DeleteObject("landing", "doc", del->version_id).ok());
  EXPECT_EQ(Get("landing", "doc"), "second");
  g.version_id = v1.version_id;
  EXPECT_EQ(Get("landing", "doc", g), "first");
  // Paging versions one at a time.
  VersionListOptions vo;
  vo.max_keys = 1;
  std::vector<std::string> vids;
  for (int i = 0; i < 5; ++i) {
    auto r = store_->ListObjectVersions("landing", vo);
    for (const auto& v : r->versions) vids.push_back(v.version_id);
    if (!r->truncated) break;
    vo.key_marker = r->next_key_marker;
    vo.version_id_marker = r->next_version_id_marker;
  }
  EXPECT_EQ(vids, (std::vector<std::string>{v2.version_id, v1.version_id}));
}

TEST_F(LocalStoreTest, CopyAndTags) {
  PutOptions o;
  o.attrs.content_type = "text/plain";
  o.attrs.user_metadata["color"] = "blue";
  StringSource src("payload");
  ASSERT_TRUE(store_->PutObject("landing", "src", src, o).ok());
  auto c = store_->CopyObject("landing", "src", "", "curated", "dst", nullptr);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Get("curated", "dst"), "payload");
  EXPECT_EQ(store_->HeadObject("curated", "dst", "")->attrs.user_metadata["color"], "blue");
  ObjectAttributes repl;
  repl.content_type = "application/json";
  ASSERT_TRUE(store_->CopyObject("landing", "src", "", "landing", "src", &repl).ok());
  auto h = store_->HeadObject("landing", "src", "");
  EXPECT_EQ(h->attrs.content_type, "application/json");
  EXPECT_TRUE(h->attrs.user_metadata.empty());
  ASSERT_TRUE(store_->SetObjectTags("landing", "src", "", {{"k", "v"}}).ok());
  EXPECT_EQ(store_->HeadObject("landing", "src", "")->attrs.tags.at("k"), "v");
}

}  // namespace
}  // namespace tarn::storage
