-- wrk script: POST alipay.marketing.activity.voucher.send to /gateway.do, a unique out_biz_no and
-- user per request, as a realistic unsigned form body.
-- Usage: wrk -s bench/voucher_send.lua URL -- ACTIVITY_ID
-- Counts answers with code 10000; done() prints "voucher_send ok=N other=M".

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  activity = args[1] or "ACT1"
  n = 0
  ok = 0
  other = 0
  prefix = "app_id=2021000000000001&method=alipay.marketing.activity.voucher.send&format=JSON"
    .. "&charset=utf-8&sign_type=RSA2&timestamp=" .. urlencode(os.date("%Y-%m-%d %H:%M:%S"))
    .. "&version=1.0&biz_content="
  headers = {["Content-Type"] = "application/x-www-form-urlencoded;charset=utf-8"}
end

function request()
  n = n + 1
  local seq = tid * 100000000 + n
  local biz = string.format('{"activity_id":"%s","out_biz_no":"wrk-%d","user_id":"2088%012d"}',
    activity, seq, seq)
  return wrk.format("POST", "/gateway.do", headers, prefix .. urlencode(biz))
end

function response(status, headers, body)
  if status == 200 and body:find('"code":"10000"', 1, true) then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_other = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
  end
  io.write(string.format("voucher_send ok=%d other=%d\n", total_ok, total_other))
end
